// Stands for the fmt 12 headers a pip LibTorch bundles in torch/include: picking it is the bug under test.
#error "LibTorch's bundled fmt/format.h was picked instead of the fmt that daug links"
