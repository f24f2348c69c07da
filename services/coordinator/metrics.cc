// The coordinator's metrics (metrics.h): each active run's science series (loss, entropy,
// growth) and the fleet's counters and histograms.
#include "services/coordinator/metrics.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libsgt/core/config.h"
#include "libsgt/core/event_log.h"
#include "services/common/metrics.h"

namespace sgt::coord {
namespace {

namespace scalar = sgt::events::scalar;

// Telemetry scalar name -> (metric, help). libsgt/core/event_log.h names the scalars.
struct ScalarMetric {
  const char* scalar;
  const char* metric;
  const char* help;
};
constexpr ScalarMetric kScalarMetrics[] = {
    {scalar::kLoss, "sgt_run_loss", "Training loss of the newest logged step."},
    {scalar::kLr, "sgt_run_learning_rate", "Learning rate of the newest logged step."},
    {scalar::kValLoss, "sgt_run_validation_loss", "Newest validation loss."},
    {scalar::kValPpl, "sgt_run_validation_perplexity", "Newest validation perplexity."},
    {scalar::kTokensPerS, "sgt_run_tokens_per_second", "Training tokens per second, newest step."},
    {scalar::kFlops, "sgt_run_flops", "Training FLOPs so far (sgt-method 6)."},
    {scalar::kVanillaFlops, "sgt_run_vanilla_flops",
     "FLOPs vanilla training would have spent so far."},
    {scalar::kOverhead, "sgt_run_flops_overhead_ratio",
     "Training FLOPs over vanilla's, minus 1 (0.02 = +2 %)."},
};

const char* SignalName(int signal) {
  return signal == v1::ENTROPY_SIGNAL_PROBE ? "probe" : "train";
}

}  // namespace

void ReadModelShape(const std::string& config_json, RunInfo* info) {
  const RunConfigBrief brief = BriefOfConfigJson(config_json);
  // Bounded label sets: a nonsense shape from a hand-edited store does not make 10^6 series.
  info->layers = std::clamp(brief.layers, 0, 1024);
  info->heads = std::clamp(brief.heads, 0, 1024);
}

// ---------------------------------------------------------------------------------------------
// RunScience

namespace {

// Layers and heads a run may have series for: its model's, or a cap when the configuration did
// not say. Telemetry beyond them is nonsense and is left out, so label sets stay bounded.
constexpr int kMaxUnknown = 256;
int LayerBound(const RunInfo& i) { return i.layers > 0 ? i.layers : kMaxUnknown; }
int HeadBound(const RunInfo& i) { return i.heads > 0 ? i.heads : kMaxUnknown; }

// Tasks a run has accuracy series for (the first in name order): eval.tasks lists a handful;
// their groups (MMLU's categories) get no series, so label sets stay bounded.
constexpr int kMaxTaskSeries = 32;

}  // namespace

void RunScience::Grow(Run& r, int layers) {
  layers = std::min(layers, LayerBound(r.info));
  if (static_cast<int>(r.loop_depth.size()) >= layers) return;
  r.loop_depth.resize(layers, 0);
  r.looped_heads.resize(layers, 0);
}

void RunScience::Apply(Run& r, const v1::GrowthDecision& d) {
  r.decisions[d.action()] += 1;
  if (d.layer() < 0 || d.layer() >= LayerBound(r.info) || d.action() == "hold") return;
  Grow(r, d.layer() + 1);
  if (d.layer() >= static_cast<int>(r.loop_depth.size())) return;
  r.loop_depth[d.layer()] = d.k();
  r.looped_heads[d.layer()] = d.whole_block() ? r.info.heads : d.heads_size();
}

void RunScience::Track(int64_t run_id, RunInfo info, const std::vector<v1::GrowthDecision>& past) {
  Run r;
  r.step = info.step;
  r.info = std::move(info);
  Grow(r, r.info.layers);
  for (const v1::GrowthDecision& d : past) Apply(r, d);
  std::lock_guard<std::mutex> lock(mu_);
  runs_[run_id] = std::move(r);
}

bool RunScience::Tracked(int64_t run_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return runs_.count(run_id) > 0;
}

void RunScience::Drop(int64_t run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  runs_.erase(run_id);
}

void RunScience::Ingest(int64_t run_id, const v1::TelemetryBatch& b) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  Run& r = it->second;
  for (const v1::ScalarRow& s : b.scalars()) {
    r.step = std::max(r.step, s.step());
    auto& [step, value] = r.scalars[s.name()];
    if (s.step() >= step) step = s.step(), value = s.value();
  }
  for (const v1::EntropyRow& e : b.entropy()) {
    r.step = std::max(r.step, e.step());
    if (e.loop() != 0 || e.layer() < 0 || e.layer() >= LayerBound(r.info) || e.head() < 0 ||
        e.head() >= HeadBound(r.info)) {
      continue;
    }
    Grow(r, e.layer() + 1);
    Entropy& en = r.entropy[{e.signal(), e.layer()}];
    if (e.step() < en.step) continue;
    if (e.step() > en.step) {  // a newer measurement replaces the whole layer
      en.step = e.step();
      en.heads.clear();
    }
    if (static_cast<int>(en.heads.size()) <= e.head()) en.heads.resize(e.head() + 1, -1);
    en.heads[e.head()] = e.value();
  }
  for (const v1::GrowthDecision& d : b.decisions()) Apply(r, d);
}

std::vector<prometheus::MetricFamily> RunScience::Collect() const {
  metrics::Families f;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, r] : runs_) {
    const std::map<std::string, std::string> run = {{"sweep", r.info.sweep}, {"run", r.info.run}};
    auto with = [&run](std::initializer_list<std::pair<const std::string, std::string>> more) {
      std::map<std::string, std::string> l = run;
      l.insert(more);
      return l;
    };
    f.Gauge("sgt_run_info", "The run's name and variant (always 1).",
            with({{"name", r.info.name}, {"variant", r.info.variant}}), 1);
    f.Gauge("sgt_run_step", "Newest optimizer step reported.", run, static_cast<double>(r.step));
    f.Gauge("sgt_run_target_steps", "The run's train.steps.", run,
            static_cast<double>(r.info.target_steps));
    for (const ScalarMetric& m : kScalarMetrics) {
      auto s = r.scalars.find(m.scalar);
      if (s != r.scalars.end()) f.Gauge(m.metric, m.help, run, s->second.second);
    }
    // Task accuracies: the newest task_eval rows (acc/<task>, acc_norm/<task>, and the macro
    // means acc, acc_norm), tasks' totals only.
    std::set<std::string> tasks;
    for (const auto& [name, value] : r.scalars) {
      const std::optional<events::TaskScalar> t = events::ParseTaskScalarName(name);
      if (!t || !t->group.empty()) continue;
      if (t->task.empty()) {
        f.Gauge("sgt_run_task_accuracy_mean",
                "Macro mean of the zero-shot task accuracies of the newest evaluation.",
                with({{"metric", t->metric}}), value.second);
        continue;
      }
      if (tasks.count(t->task) == 0) {
        if (static_cast<int>(tasks.size()) >= kMaxTaskSeries) continue;
        tasks.insert(t->task);
      }
      f.Gauge("sgt_run_task_accuracy",
              "Zero-shot multiple-choice accuracy of one task, newest evaluation (metric acc or "
              "acc_norm).",
              with({{"task", t->task}, {"metric", t->metric}}), value.second);
    }
    for (const auto& [key, en] : r.entropy) {
      const std::string signal = SignalName(key.first), layer = absl::StrCat(key.second);
      double sum = 0, sq = 0;
      int n = 0;
      for (size_t h = 0; h < en.heads.size(); ++h) {
        if (en.heads[h] < 0) continue;  // a head this batch did not carry
        f.Gauge("sgt_head_attention_entropy", "Base-pass attention entropy of one head, in [0, 1].",
                with({{"layer", layer}, {"head", absl::StrCat(h)}, {"signal", signal}}),
                en.heads[h]);
        sum += en.heads[h];
        sq += en.heads[h] * en.heads[h];
        ++n;
      }
      if (n == 0) continue;
      const double mean = sum / n;
      f.Gauge("sgt_layer_attention_entropy",
              "Mean base-pass head entropy of the layer (Ebar), in [0, 1].",
              with({{"layer", layer}, {"signal", signal}}), mean);
      f.Gauge("sgt_layer_entropy_variance",
              "Population variance of the layer's base-pass head entropies.",
              with({{"layer", layer}, {"signal", signal}}), std::max(0.0, sq / n - mean * mean));
    }
    int looped = 0;
    for (size_t l = 0; l < r.loop_depth.size(); ++l) {
      const auto layer = with({{"layer", absl::StrCat(l)}});
      f.Gauge("sgt_layer_loop_depth", "How many times the layer's looped heads run again.", layer,
              r.loop_depth[l]);
      f.Gauge("sgt_layer_looped_heads", "Heads looped in the layer.", layer, r.looped_heads[l]);
      looped += r.looped_heads[l];
    }
    f.Gauge("sgt_run_looped_heads", "Looped heads over all layers.", run, looped);
    for (const char* action : {"activate", "deepen", "hold", "fixed"}) {
      auto d = r.decisions.find(action);
      f.Counter("sgt_growth_decisions_total", "Growth decisions so far.",
                with({{"action", action}}),
                d == r.decisions.end() ? 0.0 : static_cast<double>(d->second));
    }
  }
  return f.Take();
}

// ---------------------------------------------------------------------------------------------
// CoordinatorMetrics

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry)
    : rows_(prometheus::BuildCounter()
                .Name("sgt_telemetry_rows_ingested_total")
                .Help("Telemetry rows stored, by kind (replays not counted).")
                .Register(registry)),
      batches_(prometheus::BuildCounter()
                   .Name("sgt_telemetry_batches_total")
                   .Help("Telemetry batches received, by result (stored, duplicate, refused).")
                   .Register(registry)),
      scheduling_(prometheus::BuildHistogram()
                      .Name("sgt_scheduling_latency_seconds")
                      .Help("From entering the queue to being assigned to a worker.")
                      .Register(registry)
                      .Add({}, prometheus::Histogram::BucketBoundaries{
                                   0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
                                   3600, 14400, 86400})),
      store_write_(prometheus::BuildHistogram()
                       .Name("sgt_store_write_duration_seconds")
                       .Help("SQLite write transactions, from BEGIN to COMMIT.")
                       .Register(registry)),
      worker_message_(prometheus::BuildHistogram()
                          .Name("sgt_worker_message_duration_seconds")
                          .Help("Handling time of one message on a worker session.")
                          .Register(registry)),
      rpc_(prometheus::BuildHistogram()
               .Name("sgt_rpc_duration_seconds")
               .Help("Handling time of unary gRPC calls.")
               .Register(registry)) {
  // Every label value a dashboard plots exists from the start, at 0.
  for (const char* kind : {"scalar", "entropy", "decision", "checkpoint"}) {
    rows_.Add({{"kind", kind}});
  }
  for (const char* result : {"stored", "duplicate", "refused"}) batches_.Add({{"result", result}});
}

void CoordinatorMetrics::TelemetryBatch(const char* result, const v1::TelemetryBatch& b) {
  batches_.Add({{"result", result}}).Increment();
  if (std::string(result) != "stored") return;
  rows_.Add({{"kind", "scalar"}}).Increment(b.scalars_size());
  rows_.Add({{"kind", "entropy"}}).Increment(b.entropy_size());
  rows_.Add({{"kind", "decision"}}).Increment(b.decisions_size());
  rows_.Add({{"kind", "checkpoint"}}).Increment(b.checkpoints_size());
}

void CoordinatorMetrics::StoreWrite(const char* op, double seconds) {
  store_write_.Add({{"op", op}}, metrics::LatencyBuckets()).Observe(seconds);
}

void CoordinatorMetrics::WorkerMessage(const char* kind, double seconds) {
  worker_message_.Add({{"kind", kind}}, metrics::LatencyBuckets()).Observe(seconds);
}

void CoordinatorMetrics::Rpc(const std::string& service, const std::string& method,
                             const std::string& code, double seconds) {
  rpc_.Add({{"service", service}, {"method", method}, {"code", code}}, metrics::LatencyBuckets())
      .Observe(seconds);
}

namespace {

const char* CodeName(grpc::StatusCode c) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",          "UNKNOWN",        "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

// One per call: starts the clock when the call's metadata arrives, observes when its status
// is sent. Streaming calls (worker sessions, watch) live for hours and are not timed here.
class RpcTimer : public grpc::experimental::Interceptor {
 public:
  RpcTimer(CoordinatorMetrics* m, grpc::experimental::ServerRpcInfo* info) : m_(m) {
    timed_ = info->type() == grpc::experimental::ServerRpcInfo::Type::UNARY;
    // "/sgt.v1.CoordinatorService/SubmitSweep" -> service "CoordinatorService", method "SubmitSweep".
    const std::string full = info->method() != nullptr ? info->method() : "";
    const size_t slash = full.rfind('/');
    method_ = slash == std::string::npos ? full : full.substr(slash + 1);
    std::string service = slash == std::string::npos ? "" : full.substr(0, slash);
    if (!service.empty() && service[0] == '/') service.erase(0, 1);
    const size_t dot = service.rfind('.');
    service_ = dot == std::string::npos ? service : service.substr(dot + 1);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using H = grpc::experimental::InterceptionHookPoints;
    if (timed_ && methods->QueryInterceptionHookPoint(H::POST_RECV_INITIAL_METADATA)) {
      start_ = std::chrono::steady_clock::now();
    }
    if (timed_ && methods->QueryInterceptionHookPoint(H::PRE_SEND_STATUS)) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      m_->Rpc(service_, method_, CodeName(methods->GetSendStatus().error_code()), s);
    }
    methods->Proceed();
  }

 private:
  CoordinatorMetrics* m_;
  bool timed_ = false;
  std::string service_, method_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

class RpcTimerFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcTimerFactory(CoordinatorMetrics* m) : m_(m) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcTimer(m_, info);
  }

 private:
  CoordinatorMetrics* m_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CoordinatorMetrics::RpcInterceptor() {
  return std::make_unique<RpcTimerFactory>(this);
}

}  // namespace sgt::coord
