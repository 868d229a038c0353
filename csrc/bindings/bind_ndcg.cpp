#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <vector>

#include "bindings/checks.h"
#include "ospo/ndcg.h"

namespace ospo_bindings {

namespace {

// Pool rows must be unique catalog rows in [0, n_items), or -1 padding.
void require_pool_items(const py::array_t<int64_t, py::array::c_style>& pool_items, int64_t n_items) {
  const int64_t P = pool_items.shape(1);
  std::vector<int64_t> row;
  for (py::ssize_t q = 0; q < pool_items.shape(0); ++q) {
    row.assign(pool_items.data() + q * P, pool_items.data() + (q + 1) * P);
    for (int64_t j = 0; j < P; ++j)
      if (row[j] < -1 || row[j] >= n_items)
        throw py::value_error("pool_items row " + std::to_string(q) + " holds " + std::to_string(row[j]) +
                              ", outside [0, " + std::to_string(n_items) + ") and not -1 padding");
    std::sort(row.begin(), row.end());
    for (int64_t j = 1; j < P; ++j)
      if (row[j] >= 0 && row[j] == row[j - 1])
        throw py::value_error("pool_items row " + std::to_string(q) + " repeats catalog row " + std::to_string(row[j]));
  }
}

// Owns the buffers behind an ospo::PoolRanking for the Python tile loop.
class PoolRankingState {
 public:
  PoolRankingState(const py::array& pool_scores_in, const py::array& pool_items_in, const py::array& relevance_in,
                   const std::string& gain, int64_t n_items, int64_t k) {
    const auto pool_scores = require<double>(pool_scores_in, "pool_scores", {-1, -1});
    const int64_t C = pool_scores.shape(0), P = pool_scores.shape(1);
    const auto pool_items = require<int64_t>(pool_items_in, "pool_items", {C, P});
    const auto relevance = require<double>(relevance_in, "pool_relevance", {C, P});
    require_non_negative(n_items, "n_items");
    require_positive(k, "k");
    require_finite(pool_scores, "pool_scores");
    require_finite(relevance, "pool_relevance");
    require_pool_items(pool_items, n_items);
    n_items_ = n_items;
    scores_.resize(C * P);
    items_.resize(C * P);
    gains_.resize(C * P);
    n_valid_.resize(C);
    n_alive_.resize(C);
    beaten_from_.resize(C * (P + 1));
    ranking_ = {C,           P,           k, scores_.data(), items_.data(), gains_.data(), n_valid_.data(),
                n_alive_.data(), beaten_from_.data()};
    py::gil_scoped_release release;
    ospo::pool_ranking_init(pool_scores.data(), pool_items.data(), relevance.data(), parse_gain(gain), ranking_);
  }

  void add_tile(const py::array& tile_in, int64_t tile_start) {
    if (tile_in.ndim() != 2 || tile_in.shape(0) != ranking_.n_queries)
      throw py::value_error("tile_scores must have shape (" + std::to_string(ranking_.n_queries) + ", *), got " +
                            shape_of(tile_in));
    if (tile_start < 0 || tile_start + tile_in.shape(1) > n_items_)
      throw py::value_error("tile_start " + std::to_string(tile_start) + " with " + std::to_string(tile_in.shape(1)) +
                            " columns runs past n_items = " + std::to_string(n_items_));
    if (tile_in.dtype().is(py::dtype::of<float>())) {
      const auto tile = require<float>(tile_in, "tile_scores", {-1, -1});
      require_finite(tile, "tile_scores");
      py::gil_scoped_release release;
      ospo::pool_ranking_add_tile(tile.data(), tile.shape(1), tile.shape(1), tile_start, ranking_);
    } else {
      const auto tile = require<double>(tile_in, "tile_scores", {-1, -1});
      require_finite(tile, "tile_scores");
      py::gil_scoped_release release;
      ospo::pool_ranking_add_tile(tile.data(), tile.shape(1), tile.shape(1), tile_start, ranking_);
    }
  }

  py::array_t<double> ndcg() const {
    py::array_t<double> out(ranking_.n_queries);
    py::gil_scoped_release release;
    ospo::pool_ranking_ndcg(ranking_, out.mutable_data());
    return out;
  }

 private:
  int64_t n_items_ = 0;
  std::vector<double> scores_, gains_;
  std::vector<int64_t> items_, n_valid_, n_alive_, beaten_from_;
  ospo::PoolRanking ranking_;
};

}  // namespace

void bind_ndcg(py::module_& m) {
  m.def(
      "ndcg_at_k",
      [](const py::array& scores_in, const py::array& relevance_in, int64_t k, const std::string& gain) {
        const auto scores = require<double>(scores_in, "scores", {-1, -1});
        const int64_t Q = scores.shape(0), N = scores.shape(1);
        const auto relevance = require<double>(relevance_in, "relevance", {Q, N});
        require_positive(k, "k");
        require_finite(scores, "scores");
        require_finite(relevance, "relevance");
        const ospo::Gain parsed = parse_gain(gain);
        py::array_t<double> out(Q);
        {
          py::gil_scoped_release release;
          ospo::ndcg_at_k(scores.data(), relevance.data(), Q, N, k, parsed, out.mutable_data());
        }
        return out;
      },
      py::arg("scores"), py::arg("relevance"), py::arg("k"), py::arg("gain"));

  py::class_<PoolRankingState>(m, "PoolRanking",
                               "Pool ranks accumulated over corpus score tiles (spec §2 NDCG@pool without [C, N]).")
      .def(py::init<const py::array&, const py::array&, const py::array&, const std::string&, int64_t, int64_t>(),
           py::arg("pool_scores"), py::arg("pool_items"), py::arg("pool_relevance"), py::arg("gain"),
           py::arg("n_items"), py::arg("k"))
      .def("add_tile", &PoolRankingState::add_tile, py::arg("tile_scores"), py::arg("tile_start"))
      .def("ndcg", &PoolRankingState::ndcg);
}

}  // namespace ospo_bindings
