// Device queries and launch checks shared by the CUDA launchers.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "ospo/cuda_ops.h"

namespace ospo::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // a missing driver is an answer (0 devices), not a sticky error
    return 0;
  }
  return count;
}

void check_launch(const char* kernel) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess)
    throw std::runtime_error(std::string(kernel) + " failed to launch: " + cudaGetErrorString(error));
}

}  // namespace ospo::cuda
