#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

int main() { return fmt::format("{}", fmt::join(std::vector<int>{1, 2}, ",")) == "1,2" ? 0 : 1; }
