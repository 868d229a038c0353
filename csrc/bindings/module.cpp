// ospo_fast._core: pybind11 bindings of the C++ core (csrc/ospo). Each bind_*.cpp
// checks its arguments; the core itself knows nothing of Python.
#include <pybind11/pybind11.h>

#include "ospo/parallel.h"

namespace py = pybind11;

namespace ospo_bindings {
void bind_coalitions(py::module_& m);
void bind_owen(py::module_& m);
void bind_credit(py::module_& m);
void bind_ndcg(py::module_& m);
void bind_pack(py::module_& m);
#ifdef OSPO_WITH_CUDA
void bind_cuda(py::module_& m);
#endif
}  // namespace ospo_bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "ospo_fast native core: coalition plans, Owen values, token advantages, retrieval NDCG";
#ifdef OSPO_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  m.def("num_threads", &ospo::default_threads, "Threads the core uses for large batches.");
  m.def("set_num_threads", &ospo::set_default_threads, py::arg("n_threads"),
        "Threads for large batches; 0 restores the hardware concurrency.");
  ospo_bindings::bind_coalitions(m);
  ospo_bindings::bind_owen(m);
  ospo_bindings::bind_credit(m);
  ospo_bindings::bind_ndcg(m);
  ospo_bindings::bind_pack(m);
#ifdef OSPO_WITH_CUDA
  ospo_bindings::bind_cuda(m);
#endif
}
