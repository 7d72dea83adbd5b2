"""The C kernels' sources, shipped inside the package (as minigpt.kernels) for the C backend to compile."""
