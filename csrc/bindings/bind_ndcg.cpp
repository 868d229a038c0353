#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <vector>

#include "bindings/checks.h"
#include "ospo/bf16_screen.h"
#include "ospo/ndcg.h"
#include "ospo/screened_ndcg.h"

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
    const ospo::Gain parsed = parse_gain(gain);
    require_gains_fit(relevance.data(), pool_items.data(), C, P, parsed, "pool_relevance");
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
    ospo::pool_ranking_init(pool_scores.data(), pool_items.data(), relevance.data(), parsed, ranking_);
  }

  void add_tile(const py::array& tile_in, int64_t tile_start) {
    if (tile_in.ndim() != 2 || tile_in.shape(0) != ranking_.n_queries)
      throw py::value_error("tile_scores must have shape (" + std::to_string(ranking_.n_queries) + ", *), got " +
                            shape_of(tile_in));
    // tile_start <= n_items - L, not tile_start + L <= n_items: the sum may overflow.
    if (tile_start < 0 || tile_start > n_items_ - tile_in.shape(1))
      throw py::value_error("tile_start " + std::to_string(tile_start) + " with " + std::to_string(tile_in.shape(1)) +
                            " columns runs past n_items = " + std::to_string(n_items_));
    if (has_dtype<float>(tile_in)) {
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

// A corpus packed once for the screened fused NDCG@pool. It keeps a reference to the
// float32 rows, which the caller must not change (ndcg.prepare_corpus hands it a
// read-only copy).
class ScreenedCorpus {
 public:
  explicit ScreenedCorpus(const py::array& corpus_in) : rows_(require<float>(corpus_in, "corpus", {-1, -1})) {
    require_finite(rows_, "corpus");
    if (rows_.shape(0) >= (int64_t(1) << 31))
      throw py::value_error("corpus must have fewer than 2**31 rows, got " + std::to_string(rows_.shape(0)));
    py::gil_scoped_release release;
    if (!ospo::pack_bf16_corpus(rows_.data(), rows_.shape(0), rows_.shape(1), packed_))
      throw py::value_error("corpus holds values too large for bf16 screening (|x| >= 3.39e38)");
  }

  int64_t n_items() const { return packed_.n_rows; }
  int64_t dim() const { return packed_.dim; }

  // NDCG@pool per query, or None where this CPU cannot run the screen.
  py::object pool_ndcg(const py::array& queries_in, const py::array& pool_items_in, const py::array& relevance_in,
                       int64_t k, const std::string& gain) const {
    const auto queries = require<float>(queries_in, "queries", {-1, packed_.dim});
    const int64_t C = queries.shape(0);
    const auto pool_items = require<int64_t>(pool_items_in, "pool_items", {C, -1});
    const int64_t P = pool_items.shape(1);
    const auto relevance = require<double>(relevance_in, "pool_relevance", {C, P});
    require_positive(k, "k");
    require_finite(queries, "queries");
    require_finite(relevance, "pool_relevance");
    const ospo::Gain parsed = parse_gain(gain);
    require_gains_fit(relevance.data(), pool_items.data(), C, P, parsed, "pool_relevance");
    require_pool_items(pool_items, packed_.n_rows);
    py::array_t<double> out(C);
    bool done = false;
    {
      py::gil_scoped_release release;
      done = ospo::pool_ndcg_screened(queries.data(), C, rows_.data(), packed_, pool_items.data(), relevance.data(), P,
                                      k, parsed, out.mutable_data());
    }
    if (!done) return py::none();
    return std::move(out);
  }

 private:
  py::array_t<float, py::array::c_style> rows_;  // [N, d] the exact scores' source
  ospo::Bf16Corpus packed_;
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
        require_gains_fit(relevance.data(), nullptr, Q, N, parsed, "relevance");
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

  m.def("bf16_screen_supported", &ospo::bf16_screen_supported,
        "True when this CPU runs the bf16-screened fused NDCG (x86-64 with AVX512-BF16).");
  py::class_<ScreenedCorpus>(m, "ScreenedCorpus",
                              "A corpus packed once for the bf16-screened fused NDCG@pool (exact fp64 scores).")
      .def(py::init<const py::array&>(), py::arg("corpus"))
      .def_property_readonly("n_items", &ScreenedCorpus::n_items)
      .def_property_readonly("dim", &ScreenedCorpus::dim)
      .def("pool_ndcg", &ScreenedCorpus::pool_ndcg, py::arg("queries"), py::arg("pool_items"),
           py::arg("pool_relevance"), py::arg("k"), py::arg("gain"),
           "NDCG@pool of queries [C, d] judged on pool rows [C, P]; None where the CPU lacks AVX512-BF16.");
}

}  // namespace ospo_bindings
