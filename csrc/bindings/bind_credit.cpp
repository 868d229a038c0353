#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings/checks.h"
#include "ospo/credit.h"
#include "ospo/grpo.h"

namespace ospo_bindings {

namespace {

void require_spans(const py::array_t<int64_t, py::array::c_style>& spans, const char* name) {
  const int64_t* data = spans.data();
  for (py::ssize_t r = 0; r < spans.size() / 2; ++r)
    if (data[2 * r] < 0 || data[2 * r] > data[2 * r + 1])
      throw py::value_error(std::string(name) + " row " + std::to_string(r) + " must satisfy 0 <= start <= end, got (" +
                            std::to_string(data[2 * r]) + ", " + std::to_string(data[2 * r + 1]) + ")");
}

const uint8_t* bytes(const py::array_t<bool, py::array::c_style>& mask) {
  return reinterpret_cast<const uint8_t*>(mask.data());
}

// Token credit is a convex combination of phi: within this bound its rounding stays
// finite, and the Owen values of coalition values within kMaxCoalitionValue (at most
// DBL_MAX / 2, plus rounding) are well inside it.
constexpr double kMaxPhi = 0.75 * ospo::kMaxDouble;

void require_phi(const py::array_t<double, py::array::c_style>& phi) {
  require_finite(phi, "phi");
  require_magnitude(phi, kMaxPhi, "phi", "token credit averages phi");
}

void require_advantages(const py::array_t<double, py::array::c_style>& advantages, int64_t n_tokens) {
  require_finite(advantages, "advantages");
  require_magnitude(advantages, advantage_limit(n_tokens), "advantages",
                    "A_t = T p_t Â over a row of T tokens must stay finite");
}

// Is a credit scale needed? Signed mode requires one and other modes refuse one.
bool needs_credit_scale(const py::object& scale_in, ospo::Mode mode, bool invert_negative) {
  if (mode != ospo::Mode::Signed) {
    if (!scale_in.is_none()) throw py::value_error("credit_scale only applies to mode 'signed'");
    return false;
  }
  if (scale_in.is_none()) throw py::value_error("mode 'signed' needs credit_scale (advantage units per unit of credit)");
  if (invert_negative)
    throw py::value_error("invert_negative does not apply to mode 'signed' (its credit already pushes down what hurt)");
  return true;
}

// Signed mode's scales [B]; an empty array in the other modes.
py::array_t<double, py::array::c_style> credit_scales(const py::object& scales_in, ospo::Mode mode, int64_t n_rows,
                                                      bool invert_negative = false) {
  if (!needs_credit_scale(scales_in, mode, invert_negative)) return py::array_t<double, py::array::c_style>();
  const auto scales = require<double>(scales_in.cast<py::array>(), "credit_scale", {n_rows});
  require_credit_scales(scales.data(), n_rows);
  return scales;
}

const double* data_or_null(const py::array_t<double, py::array::c_style>& array) {
  return array.size() > 0 ? array.data() : nullptr;
}

}  // namespace

void bind_credit(py::module_& m) {
  m.def(
      "token_credit",
      [](const py::array& spans_in, const py::array& offsets_in, const py::array& phi_in) {
        const auto phi = require<double>(phi_in, "phi", {-1});
        const auto spans = require<int64_t>(spans_in, "segment_spans", {phi.size(), 2});
        const auto offsets = require<int64_t>(offsets_in, "token_offsets", {-1, 2});
        require_phi(phi);
        require_spans(spans, "segment_spans");
        require_spans(offsets, "token_offsets");
        py::array_t<double> credit(offsets.shape(0));
        ospo::token_credit(spans.data(), phi.data(), phi.size(), offsets.data(), offsets.shape(0),
                           credit.mutable_data());
        return credit;
      },
      py::arg("segment_spans"), py::arg("token_offsets"), py::arg("phi"));
  m.def(
      "redistribute",
      [](const py::array& credit_in, double advantage, const std::string& mode, const py::object& answer_mask_in,
         double alpha, const py::object& credit_scale) {
        const auto credit = require<double>(credit_in, "credit", {-1});
        require_finite(credit, "credit");
        if (!std::isfinite(advantage))
          throw py::value_error("advantage must be finite, got " + format_number(advantage));
        if (!(std::fabs(advantage) <= advantage_limit(credit.size())))
          throw py::value_error("advantage must satisfy |x| <= " + format_number(advantage_limit(credit.size())) +
                                " (A_t = T p_t Â over T = " + std::to_string(credit.size()) +
                                " tokens must stay finite), got " + format_number(advantage));
        require_alpha(alpha);
        const ospo::Mode parsed = parse_mode(mode);
        const double scale = needs_credit_scale(credit_scale, parsed, false) ? credit_scale.cast<double>() : 1.0;
        require_credit_scales(&scale, 1);
        py::array_t<double> out(credit.size());
        const uint8_t* answer = nullptr;
        py::array_t<bool, py::array::c_style> answer_mask;
        if (!answer_mask_in.is_none()) {
          answer_mask = require<bool>(answer_mask_in.cast<py::array>(), "answer_mask", {credit.size()});
          answer = bytes(answer_mask);
        }
        ospo::redistribute(credit.data(), answer, credit.size(), advantage, parsed, alpha, scale, out.mutable_data());
        if (parsed == ospo::Mode::Signed) require_finite_result(out.data(), out.size());
        return out;
      },
      py::arg("credit"), py::arg("advantage"), py::arg("mode"), py::arg("answer_mask"), py::arg("alpha"),
      py::arg("credit_scale") = py::none());
  m.def(
      "redistribute_batch",
      [](const py::array& credit_in, const py::array& advantages_in, const std::string& mode,
         const py::array& token_mask_in, const py::array& answer_mask_in, double alpha,
         const py::object& credit_scale) {
        const auto credit = require<double>(credit_in, "credit", {-1, -1});
        const int64_t B = credit.shape(0), T = credit.shape(1);
        const auto advantages = require<double>(advantages_in, "advantages", {B});
        const auto token_mask = require<bool>(token_mask_in, "token_mask", {B, T});
        const auto answer_mask = require<bool>(answer_mask_in, "answer_mask", {B, T});
        require_finite(credit, "credit");
        require_advantages(advantages, T);
        require_alpha(alpha);
        const ospo::Mode parsed = parse_mode(mode);
        const auto scales = credit_scales(credit_scale, parsed, B);
        py::array_t<double> out({B, T});
        {
          py::gil_scoped_release release;
          ospo::redistribute_batch(credit.data(), advantages.data(), bytes(token_mask), bytes(answer_mask), B, T,
                                   parsed, alpha, data_or_null(scales), out.mutable_data());
        }
        if (parsed == ospo::Mode::Signed) require_finite_result(out.data(), out.size());
        return out;
      },
      py::arg("credit"), py::arg("advantages"), py::arg("mode"), py::arg("token_mask"), py::arg("answer_mask"),
      py::arg("alpha"), py::arg("credit_scale") = py::none());
  m.def(
      "token_credit_batch",
      [](const py::array& spans_in, const py::array& phi_offsets_in, const py::array& phi_in,
         const py::array& token_offsets_in, const py::array& token_mask_in) {
        const auto phi = require<double>(phi_in, "phi", {-1});
        const auto spans = require<int64_t>(spans_in, "segment_spans", {phi.size(), 2});
        const auto token_offsets = require<int64_t>(token_offsets_in, "token_offsets", {-1, -1, 2});
        const int64_t B = token_offsets.shape(0), T = token_offsets.shape(1);
        const auto phi_offsets = require<int64_t>(phi_offsets_in, "phi_offsets", {B + 1});
        const auto token_mask = require<bool>(token_mask_in, "token_mask", {B, T});
        require_offsets(phi_offsets, phi.size(), "phi_offsets", "phi");
        require_phi(phi);
        require_spans(spans, "segment_spans");
        require_spans(token_offsets, "token_offsets");
        py::array_t<double> credit({B, T});
        {
          py::gil_scoped_release release;
          ospo::token_credit_batch(spans.data(), phi_offsets.data(), phi.data(), token_offsets.data(),
                                   bytes(token_mask), B, T, credit.mutable_data());
        }
        return credit;
      },
      py::arg("segment_spans"), py::arg("phi_offsets"), py::arg("phi"), py::arg("token_offsets"),
      py::arg("token_mask"));
  m.def(
      "token_advantages_batch",
      [](const py::array& n_segments_in, const py::array& coalition_offsets_in, const py::array& coalitions_in,
         const py::array& values_in, const py::array& spans_in, const py::array& token_offsets_in,
         const py::array& token_mask_in, const py::array& answer_mask_in, const py::array& advantages_in,
         const std::string& mode, double alpha, bool invert_negative, const std::string& estimator,
         const py::object& credit_scale) {
        const auto n_segments = require<int64_t>(n_segments_in, "n_segments", {-1});
        const int64_t B = n_segments.size();
        const auto coalition_offsets = require<int64_t>(coalition_offsets_in, "coalition_offsets", {B + 1});
        const auto values = require<double>(values_in, "values", {-1});
        const auto coalitions = require<int32_t>(coalitions_in, "coalitions", {values.size(), 2});
        const auto spans = require<int64_t>(spans_in, "segment_spans", {-1, 2});
        const auto token_offsets = require<int64_t>(token_offsets_in, "token_offsets", {B, -1, 2});
        const int64_t T = token_offsets.shape(1);
        const auto token_mask = require<bool>(token_mask_in, "token_mask", {B, T});
        const auto answer_mask = require<bool>(answer_mask_in, "answer_mask", {B, T});
        const auto advantages = require<double>(advantages_in, "advantages", {B});
        require_offsets(coalition_offsets, values.size(), "coalition_offsets", "values");
        int64_t total_segments = 0;
        for (int64_t b = 0; b < B; ++b) {
          if (n_segments.data()[b] < 0)
            throw py::value_error("n_segments must be >= 0, got " + std::to_string(n_segments.data()[b]) +
                                  " at index " + std::to_string(b));
          total_segments = add_sizes(total_segments, n_segments.data()[b],
                                     "the sum of n_segments (at index " + std::to_string(b) + ")");
        }
        if (total_segments != spans.shape(0))
          throw py::value_error("segment_spans must have sum(n_segments) = " + std::to_string(total_segments) +
                                " rows, got " + std::to_string(spans.shape(0)));
        require_finite(values, "values");
        require_magnitude(values, kMaxCoalitionValue, "values", "differences of coalition values must stay finite");
        require_advantages(advantages, T);
        require_spans(spans, "segment_spans");
        require_spans(token_offsets, "token_offsets");
        require_alpha(alpha);
        const ospo::Mode parsed = parse_mode(mode);
        const ospo::Estimator parsed_estimator = parse_estimator(estimator);
        const auto scales = credit_scales(credit_scale, parsed, B, invert_negative);
        py::array_t<double> out({B, T});
        py::array_t<double> phi(total_segments);
        {
          py::gil_scoped_release release;
          ospo::token_advantages_batch(n_segments.data(), coalition_offsets.data(),
                                       reinterpret_cast<const ospo::Window*>(coalitions.data()), values.data(),
                                       spans.data(), token_offsets.data(), bytes(token_mask), bytes(answer_mask),
                                       advantages.data(), B, T, parsed_estimator, parsed, alpha, invert_negative,
                                       data_or_null(scales), out.mutable_data(), phi.mutable_data());
        }
        if (parsed == ospo::Mode::Signed) require_finite_result(out.data(), out.size());
        return py::make_tuple(out, phi);
      },
      py::arg("n_segments"), py::arg("coalition_offsets"), py::arg("coalitions"), py::arg("values"),
      py::arg("segment_spans"), py::arg("token_offsets"), py::arg("token_mask"), py::arg("answer_mask"),
      py::arg("advantages"), py::arg("mode"), py::arg("alpha"), py::arg("invert_negative"),
      py::arg("estimator") = "spec", py::arg("credit_scale") = py::none());
  m.def(
      "group_advantages",
      [](const py::array& rewards_in, int64_t group_size, double eps, const std::string& scale) {
        const auto rewards = require<double>(rewards_in, "rewards", {-1});
        require_finite(rewards, "rewards");
        if (scale != "std" && scale != "none")
          throw py::value_error("scale must be 'std' or 'none', got '" + scale + "'");
        const bool by_std = scale == "std";
        if (group_size < (by_std ? 2 : 1))
          throw py::value_error("group_size must be >= " + std::string(by_std ? "2 (an unbiased std needs two samples)" : "1") +
                                ", got " + std::to_string(group_size));
        if (rewards.size() % group_size != 0)
          throw py::value_error("rewards length " + std::to_string(rewards.size()) +
                                " is not a multiple of group_size " + std::to_string(group_size));
        if (!(eps >= 0.0) || !std::isfinite(eps))
          throw py::value_error("eps must be finite and >= 0, got " + format_number(eps));
        if (!by_std)
          require_magnitude(rewards, ospo::kMaxDouble / 2.0, "rewards", "centred rewards must stay finite");
        py::array_t<double> out(rewards.size());
        ospo::group_advantages(rewards.data(), rewards.size(), group_size, eps, by_std, out.mutable_data());
        return out;
      },
      py::arg("rewards"), py::arg("group_size"), py::arg("eps"), py::arg("scale"));
}

}  // namespace ospo_bindings
