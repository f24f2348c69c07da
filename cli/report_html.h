// `sgtctl report --html`: the report of a sweep (or of one run) as one self-contained HTML page
// that people look at: Table 1 (cli/report.h), loss and validation perplexity against step and
// against training FLOPs (one line per row of Table 1, seeds as a band), per layer the base-pass
// entropy and intra-layer variance over training (the paper's Figures 2 and 14), head-entropy
// heat maps at chosen steps, a growth timeline per run, the sweep's settings, planned against
// measured FLOPs, and the runs that did not succeed with their reasons.
//
// Every figure is inline SVG drawn here, so the page reads with scripts off and opens with no
// network; a short inline script only toggles series from the legends. Long series are
// downsampled to HtmlReportOptions::max_points per line (bucket means, the band keeps the
// extremes; the first and last points are kept exactly). Tested in tests/cli/report_html_test.cc
// and, in a browser, by tests/integration/report_html_test.sh.
//
//   ReportTelemetry telemetry;
//   while (reader->Read(&page)) telemetry.Add(page);   // scalars, entropy and decisions pages
//   std::cout << RenderReportHtml(sweep, runs, telemetry, "s1", HtmlReportOptions());
#ifndef SGT_CLI_REPORT_HTML_H_
#define SGT_CLI_REPORT_HTML_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sgt/v1/coordinator.pb.h"
#include "sgt/v1/types.pb.h"

namespace sgt::cli {

// What the page needs of one run's telemetry (the rows of the surviving attempt, as
// QueryTelemetry returns them by default).
struct RunTrace {
  // (step, value), in the order received (RenderReportHtml sorts by step).
  std::vector<std::pair<int64_t, double>> loss, flops, val_ppl;
  // Base-pass (loop 0) head entropies by step: [layer][head], NaN where none was received.
  std::map<int64_t, std::vector<std::vector<float>>> train_entropy, probe_entropy;
  std::vector<v1::GrowthDecision> decisions;
};

// The telemetry of the runs of a report, reduced as pages arrive: only the scalars the figures
// draw and the base-pass entropies are kept.
class ReportTelemetry {
 public:
  // Adds the rows of one page (of any kind).
  void Add(const v1::TelemetryPage& page);
  // The trace of `run_id`; nullptr when no row of it arrived.
  const RunTrace* Find(const std::string& run_id) const;
  // Rows received, of every kind.
  int64_t rows() const { return rows_; }

 private:
  std::map<std::string, RunTrace> runs_;
  int64_t rows_ = 0;
};

struct HtmlReportOptions {
  int max_points = 300;    // per line of a figure, after downsampling (>= 3)
  int heatmap_steps = 3;   // head-entropy heat maps per row of Table 1
  std::string generated;   // when the report was made, as shown in its header ("" = not shown)
};

// The page. `sweep` is the sweep the runs belong to (its settings are shown; may be empty);
// `runs` the runs of the report in sweep order (one for a run's report); `target` the sweep or
// run id asked for.
std::string RenderReportHtml(const v1::Sweep& sweep, const std::vector<v1::Run>& runs,
                             const ReportTelemetry& telemetry, const std::string& target,
                             const HtmlReportOptions& options);

// Text safe inside HTML elements and attribute values.
std::string HtmlEscape(const std::string& text);

}  // namespace sgt::cli

#endif  // SGT_CLI_REPORT_HTML_H_
