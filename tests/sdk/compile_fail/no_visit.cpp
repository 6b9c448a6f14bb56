// Must NOT compile: Options has no visit(daug::OptionVisitor&).
#include <daug/guidance.h>
#include <daug/register.h>

struct NoVisitOptions {
  double scale = 1.0;
};
class NoVisit final : public daug::Guidance {
 public:
  using Options = NoVisitOptions;
  static std::shared_ptr<daug::Guidance> create(Options, daug::BuildContext&) { return nullptr; }
  at::Tensor gradient(const daug::GuidanceInput& in) override { return in.x_t; }
  std::string describe() const override { return "no visit"; }
};
DAUG_REGISTER_PLUGIN(daug::Guidance, "bad", NoVisit, "must not compile")
