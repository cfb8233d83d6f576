# The dependencies of the pbnn::pbnn interface target; pbnnConfig.cmake mirrors them with find_dependency.
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(xtensor REQUIRED)
find_package(fmt REQUIRED)
find_package(ZLIB REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
