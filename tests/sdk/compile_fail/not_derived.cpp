// Must NOT compile: the registered class does not derive from the interface.
#include <daug/guidance.h>
#include <daug/register.h>

struct NotAGuidanceOptions {
  void visit(daug::OptionVisitor&) {}
};
struct NotAGuidance {
  using Options = NotAGuidanceOptions;
  static std::shared_ptr<daug::Guidance> create(Options, daug::BuildContext&) { return nullptr; }
};
DAUG_REGISTER_PLUGIN(daug::Guidance, "bad", NotAGuidance, "must not compile")
