// The coordinator's metrics (docs/metrics.md): the per-run science gauges (RunScience) as pure
// logic, the listen-address checks, and the coordinator keeping a run's series exactly while
// it is active, rebuilt from the store after a restart, against a real SQLite store.
#include "services/coordinator/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"
#include "services/common/metrics.h"
#include "services/coordinator/coordinator.h"

namespace sgt::coord {
namespace {

namespace fs = std::filesystem;

// name{k="v",...} -> value, for every sample of `families` (labels in sorted order).
std::map<std::string, double> Samples(const std::vector<prometheus::MetricFamily>& families) {
  std::map<std::string, double> out;
  for (const prometheus::MetricFamily& f : families) {
    for (const prometheus::ClientMetric& m : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      std::string key = f.name;
      if (!labels.empty()) {
        key += "{";
        bool first = true;
        for (const auto& [k, v] : labels) {
          key += (first ? "" : ",") + k + "=\"" + v + "\"";
          first = false;
        }
        key += "}";
      }
      if (f.type == prometheus::MetricType::Histogram) {  // name_count{...} and name_sum{...}
        const std::string rest = key.substr(f.name.size());
        out[f.name + "_count" + rest] = static_cast<double>(m.histogram.sample_count);
        out[f.name + "_sum" + rest] = m.histogram.sample_sum;
      } else {
        out[key] = f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
      }
    }
  }
  return out;
}

v1::EntropyRow Entropy(int64_t step, int layer, int head, float value, int loop = 0,
                       v1::EntropySignal signal = v1::ENTROPY_SIGNAL_TRAIN) {
  v1::EntropyRow e;
  e.set_step(step);
  e.set_layer(layer);
  e.set_head(head);
  e.set_loop(loop);
  e.set_value(value);
  e.set_signal(signal);
  return e;
}

v1::GrowthDecision Decision(int64_t step, const std::string& action, int layer, int k,
                            std::vector<int> heads, bool whole_block = false) {
  v1::GrowthDecision d;
  d.set_step(step);
  d.set_action(action);
  d.set_layer(layer);
  d.set_k(k);
  for (int h : heads) d.add_heads(h);
  d.set_whole_block(whole_block);
  return d;
}

void AddScalar(v1::TelemetryBatch& b, int64_t step, const std::string& name, double value) {
  v1::ScalarRow* r = b.add_scalars();
  r->set_step(step);
  r->set_name(name);
  r->set_value(value);
}

RunInfo Info() {
  RunInfo i;
  i.sweep = "s";
  i.run = "r1";
  i.name = "sgt-seed1";
  i.variant = "sgt";
  i.target_steps = 100;
  i.layers = 3;
  i.heads = 4;
  return i;
}

TEST(RunScienceTest, LayerEntropyAndVarianceComeFromTheBasePassOfTheNewestStep) {
  RunScience s;
  s.Track(1, Info(), {});
  v1::TelemetryBatch b;
  // Step 10: layer 1's heads 0.2 0.4 0.6 0.8 (base pass), plus a loop pass that must not count.
  for (int h = 0; h < 4; ++h) *b.add_entropy() = Entropy(10, 1, h, 0.2f * (h + 1));
  *b.add_entropy() = Entropy(10, 1, 0, 0.99f, /*loop=*/1);
  // A probe measurement of the same layer is its own series.
  *b.add_entropy() = Entropy(10, 1, 0, 0.5f, 0, v1::ENTROPY_SIGNAL_PROBE);
  s.Ingest(1, b);
  auto m = Samples(s.Collect());
  const std::string l1 = R"({layer="1",run="r1",signal="train",sweep="s"})";
  EXPECT_NEAR(m.at("sgt_layer_attention_entropy" + l1), 0.5, 1e-6);
  // Population variance of 0.2, 0.4, 0.6, 0.8: 0.05.
  EXPECT_NEAR(m.at("sgt_layer_entropy_variance" + l1), 0.05, 1e-6);
  EXPECT_NEAR(
      m.at(R"(sgt_head_attention_entropy{head="3",layer="1",run="r1",signal="train",sweep="s"})"),
      0.8, 1e-6);
  EXPECT_NEAR(m.at(R"(sgt_layer_attention_entropy{layer="1",run="r1",signal="probe",sweep="s"})"),
              0.5, 1e-6);
  EXPECT_EQ(m.at(R"(sgt_layer_entropy_variance{layer="1",run="r1",signal="probe",sweep="s"})"), 0);
  EXPECT_EQ(m.at(R"(sgt_run_step{run="r1",sweep="s"})"), 10);

  // A newer step replaces the layer's heads; a late older one is ignored.
  v1::TelemetryBatch newer;
  for (int h = 0; h < 4; ++h) *newer.add_entropy() = Entropy(20, 1, h, 0.9f);
  *newer.add_entropy() = Entropy(5, 1, 0, 0.1f);
  s.Ingest(1, newer);
  m = Samples(s.Collect());
  EXPECT_NEAR(m.at("sgt_layer_attention_entropy" + l1), 0.9, 1e-6);
  EXPECT_NEAR(m.at("sgt_layer_entropy_variance" + l1), 0, 1e-9);
  EXPECT_EQ(m.at(R"(sgt_run_step{run="r1",sweep="s"})"), 20);
}

TEST(RunScienceTest, ScalarsMapToTheirMetricsAndTheNewestStepWins) {
  RunScience s;
  s.Track(1, Info(), {});
  v1::TelemetryBatch b;
  auto add = [&b](int64_t step, const std::string& name, double v) { AddScalar(b, step, name, v); };
  add(30, "loss", 2.5);
  add(20, "loss", 9.0);  // older: ignored
  add(30, "val_ppl", 12.25);
  add(30, "overhead", 0.019);
  add(30, "tokens_per_s", 6000);
  add(30, "val_ppl@x2", 99);  // extrapolation: not a metric of its own
  s.Ingest(1, b);
  auto m = Samples(s.Collect());
  EXPECT_EQ(m.at(R"(sgt_run_loss{run="r1",sweep="s"})"), 2.5);
  EXPECT_EQ(m.at(R"(sgt_run_validation_perplexity{run="r1",sweep="s"})"), 12.25);
  EXPECT_EQ(m.at(R"(sgt_run_flops_overhead_ratio{run="r1",sweep="s"})"), 0.019);
  EXPECT_EQ(m.at(R"(sgt_run_tokens_per_second{run="r1",sweep="s"})"), 6000);
  EXPECT_EQ(m.at(R"(sgt_run_target_steps{run="r1",sweep="s"})"), 100);
  EXPECT_EQ(m.at(R"(sgt_run_info{name="sgt-seed1",run="r1",sweep="s",variant="sgt"})"), 1);
  EXPECT_EQ(m.count(R"(sgt_run_validation_loss{run="r1",sweep="s"})"), 0u);  // never reported
  for (const auto& [key, v] : m) EXPECT_EQ(key.find("@"), std::string::npos) << key;
}

TEST(RunScienceTest, DecisionsSetLoopDepthsAndLoopedHeadsAndAreCounted) {
  RunScience s;
  // A resumed run: its past decisions come first.
  s.Track(1, Info(), {Decision(20, "activate", 2, 1, {0, 3})});
  auto m = Samples(s.Collect());
  EXPECT_EQ(m.at(R"(sgt_layer_loop_depth{layer="2",run="r1",sweep="s"})"), 1);
  EXPECT_EQ(m.at(R"(sgt_layer_loop_depth{layer="0",run="r1",sweep="s"})"), 0);  // from the start
  EXPECT_EQ(m.at(R"(sgt_run_looped_heads{run="r1",sweep="s"})"), 2);
  v1::TelemetryBatch b;
  *b.add_decisions() = Decision(40, "deepen", 2, 2, {0, 3});
  *b.add_decisions() = Decision(60, "activate", 1, 1, {1});
  *b.add_decisions() = Decision(80, "hold", -1, 0, {});
  s.Ingest(1, b);
  m = Samples(s.Collect());
  EXPECT_EQ(m.at(R"(sgt_layer_loop_depth{layer="2",run="r1",sweep="s"})"), 2);
  EXPECT_EQ(m.at(R"(sgt_layer_looped_heads{layer="1",run="r1",sweep="s"})"), 1);
  EXPECT_EQ(m.at(R"(sgt_run_looped_heads{run="r1",sweep="s"})"), 3);
  EXPECT_EQ(m.at(R"(sgt_growth_decisions_total{action="activate",run="r1",sweep="s"})"), 2);
  EXPECT_EQ(m.at(R"(sgt_growth_decisions_total{action="deepen",run="r1",sweep="s"})"), 1);
  EXPECT_EQ(m.at(R"(sgt_growth_decisions_total{action="hold",run="r1",sweep="s"})"), 1);
  EXPECT_EQ(m.at(R"(sgt_growth_decisions_total{action="fixed",run="r1",sweep="s"})"), 0);

  // Block Loop loops every head of the block.
  RunScience bl;
  RunInfo info = Info();
  info.variant = "block_loop";
  bl.Track(2, info, {});
  v1::TelemetryBatch whole;
  *whole.add_decisions() = Decision(10, "fixed", 0, 1, {}, /*whole_block=*/true);
  bl.Ingest(2, whole);
  EXPECT_EQ(Samples(bl.Collect()).at(R"(sgt_layer_looped_heads{layer="0",run="r1",sweep="s"})"), 4);
}

TEST(RunScienceTest, ADroppedRunHasNoSeriesAndIgnoresLateBatches) {
  RunScience s;
  s.Track(1, Info(), {});
  RunInfo other = Info();
  other.run = "r2";
  s.Track(2, other, {});
  s.Drop(1);
  v1::TelemetryBatch b;
  *b.add_entropy() = Entropy(10, 0, 0, 0.5f);
  s.Ingest(1, b);
  EXPECT_FALSE(s.Tracked(1));
  for (const auto& [key, v] : Samples(s.Collect())) {
    EXPECT_EQ(key.find("\"r1\""), std::string::npos) << key;
  }
  EXPECT_TRUE(s.Tracked(2));
}

TEST(RunScienceTest, TaskAccuraciesAreGaugesPerTaskAndMetricWithTheirMacroMean) {
  RunScience s;
  s.Track(1, Info(), {});
  v1::TelemetryBatch b;
  auto add = [&b](int64_t step, const std::string& name, double v) { AddScalar(b, step, name, v); };
  // The rows the worker makes of a task_eval line at step 40, then a newer one at 80.
  add(40, "acc/arith", 0.25);
  add(40, "acc_norm/arith", 0.3);
  add(40, "acc/mmlu", 0.5);
  add(40, "acc_norm/mmlu", 0.2);
  add(40, "acc/mmlu/stem", 0.4);  // a group: no series of its own
  add(40, "acc", 0.375);
  add(80, "acc/arith", 0.5);
  add(80, "acc_norm", 0.3);
  s.Ingest(1, b);
  auto m = Samples(s.Collect());
  EXPECT_EQ(m.at(R"(sgt_run_task_accuracy{metric="acc",run="r1",sweep="s",task="arith"})"), 0.5);
  EXPECT_EQ(m.at(R"(sgt_run_task_accuracy{metric="acc_norm",run="r1",sweep="s",task="arith"})"),
            0.3);
  EXPECT_EQ(m.at(R"(sgt_run_task_accuracy{metric="acc",run="r1",sweep="s",task="mmlu"})"), 0.5);
  EXPECT_EQ(m.at(R"(sgt_run_task_accuracy_mean{metric="acc",run="r1",sweep="s"})"), 0.375);
  EXPECT_EQ(m.at(R"(sgt_run_task_accuracy_mean{metric="acc_norm",run="r1",sweep="s"})"), 0.3);
  for (const auto& [key, v] : m) EXPECT_EQ(key.find("stem"), std::string::npos) << key;

  // Past 32 tasks the rest get no series.
  v1::TelemetryBatch many;
  for (int t = 0; t < 100; ++t) {
    for (const char* metric : {"acc", "acc_norm"}) {
      AddScalar(many, 90, absl::StrCat(metric, "/task", 1000 + t), 0.5);
    }
  }
  s.Ingest(1, many);
  int series = 0;
  for (const auto& [key, v] : Samples(s.Collect())) {
    series += key.rfind("sgt_run_task_accuracy{", 0) == 0 ? 1 : 0;
  }
  EXPECT_EQ(series, 2 * 32);
}

TEST(RunScienceTest, LabelSetsStayBoundedOnNonsenseTelemetry) {
  RunScience s;
  s.Track(1, Info(), {});
  v1::TelemetryBatch b;
  *b.add_entropy() = Entropy(10, 1 << 30, 0, 0.5f);
  *b.add_entropy() = Entropy(10, 0, 1 << 30, 0.5f);
  *b.add_entropy() = Entropy(10, -1, 0, 0.5f);
  *b.add_decisions() = Decision(10, "activate", 1 << 30, 1, {0});
  s.Ingest(1, b);
  EXPECT_LT(Samples(s.Collect()).size(), 40u);
}

TEST(RunScienceTest, TheTextFormatIsWhatPrometheusReads) {
  RunScience s;
  s.Track(1, Info(), {});
  const std::string text = prometheus::TextSerializer().Serialize(s.Collect());
  EXPECT_NE(text.find("# TYPE sgt_growth_decisions_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE sgt_layer_loop_depth gauge"), std::string::npos) << text;
  // One TYPE line per family, however many runs.
  RunInfo other = Info();
  other.run = "r2";
  s.Track(2, other, {});
  const std::string two = prometheus::TextSerializer().Serialize(s.Collect());
  size_t n = 0;
  for (size_t p = two.find("# TYPE sgt_run_step "); p != std::string::npos;
       p = two.find("# TYPE sgt_run_step ", p + 1)) {
    ++n;
  }
  EXPECT_EQ(n, 1u) << two;
}

TEST(MetricsTest, ListenAddressesAreCheckedWithTheFix) {
  EXPECT_EQ(metrics::CheckListenAddress("127.0.0.1:9464", "--metrics-listen"), "");
  EXPECT_EQ(metrics::CheckListenAddress("[::]:0", "--metrics-listen"), "");
  EXPECT_EQ(metrics::CheckListenAddress("localhost:65535", "--metrics-listen"), "");
  for (const char* bad : {"9464", ":9464", "host:", "host:x", "host:65536", "host:-1", "::1:80"}) {
    const std::string why = metrics::CheckListenAddress(bad, "--metrics-listen");
    EXPECT_NE(why.find("--metrics-listen"), std::string::npos) << bad;
    EXPECT_NE(why.find("e.g. 127.0.0.1:9464"), std::string::npos) << why;
  }
}

TEST(MetricsTest, AnEndpointServesOnThePortItPickedAndRefusesATakenOne) {
  auto a = metrics::Endpoint::Start("127.0.0.1:0", "--metrics-listen");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_GT((*a)->port(), 0);
  const std::string taken = "127.0.0.1:" + std::to_string((*a)->port());
  auto b = metrics::Endpoint::Start(taken, "--metrics-listen");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(std::string(b.status().message()).find("--metrics-listen " + taken), std::string::npos)
      << b.status();
  auto m = Samples(metrics::ProcessFamilies());
  EXPECT_GT(m.at("process_resident_memory_bytes"), 1e6);
  EXPECT_GT(m.at("process_open_fds"), 2);
  EXPECT_GT(m.at("process_start_time_seconds"), 1.6e9);
}

// ---------------------------------------------------------------------------------------------
// The coordinator with metrics, against a real store.

class NullSink : public WorkerSink {
 public:
  bool Send(const v1::CoordinatorMessage& m) override {
    if (m.has_start()) starts.push_back(m.start());
    return true;
  }
  std::vector<v1::StartRun> starts;
};

constexpr char kSweep[] = R"(name: grow
base:
  variant: sgt
  model: {layers: 3, d_model: 32, heads: 4, d_ff: 64, context: 32, vocab_size: 256}
  train: {steps: 100, warmup_steps: 5}
  growth: {t_start: 20, delta_t: 20, layers: 2, k_max: 2, heads: 2}
  data: {train: a.u16, validation: b.u16}
)";

class CoordinatorMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sgt-coord-metrics-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Open();
  }
  void TearDown() override {
    coord_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void Open() {
    coord_.reset();
    store_.reset();
    registry_ = std::make_unique<prometheus::Registry>();
    metrics_ = std::make_unique<CoordinatorMetrics>(*registry_);
    auto s = Store::Open((fs::path(dir_) / "sgt.db").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    store_->SetWriteObserver([this](const char* op, double t) { metrics_->StoreWrite(op, t); });
    CoordinatorOptions o;
    o.lease_seconds = 30;
    o.clock = [this] { return now_; };
    o.metrics = metrics_.get();
    auto c = Coordinator::Create(store_.get(), o);
    ASSERT_TRUE(c.ok()) << c.status();
    coord_ = std::move(*c);
  }
  uint64_t Connect(std::vector<v1::RunRef> held = {}) {
    v1::RegisterRequest reg;
    reg.set_name("n1");
    v1::Device* d = reg.add_devices();
    d->set_id("cpu:0");
    d->set_kind("cpu");
    auto r = coord_->Register(reg);
    EXPECT_TRUE(r.ok()) << r.status();
    v1::Hello hello;
    hello.set_worker_id(r->worker_id());
    for (auto& h : held) *hello.add_runs() = h;
    auto s = coord_->OpenSession(hello, sink_);
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }
  absl::Status Send(uint64_t session, const v1::WorkerMessage& m) {
    return coord_->HandleWorkerMessage(session, m);
  }
  absl::Status Status(uint64_t session, v1::RunState st, int attempt = 1) {
    v1::WorkerMessage m;
    m.mutable_status()->set_run_id("r1");
    m.mutable_status()->set_attempt(attempt);
    m.mutable_status()->set_state(st);
    if (st == v1::RUN_STATE_SUCCEEDED) m.mutable_status()->set_summary_json(R"({"step": 100})");
    return Send(session, m);
  }
  std::map<std::string, double> Science() { return Samples(metrics_->science().Collect()); }
  std::map<std::string, double> Registry() { return Samples(registry_->Collect()); }

  std::string dir_;
  double now_ = 1000;
  std::shared_ptr<NullSink> sink_ = std::make_shared<NullSink>();
  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coord_;
};

TEST_F(CoordinatorMetricsTest, ARunHasSeriesWhileActiveRebuiltAfterARestartAndNoneOnceEnded) {
  v1::SubmitSweepRequest req;
  req.set_yaml(kSweep);
  req.set_source_name("grow.yaml");
  ASSERT_TRUE(coord_->SubmitSweep(req).ok());
  EXPECT_TRUE(Science().empty());  // queued: not active
  EXPECT_EQ(coord_->Fleet().queue_depth, 1);
  now_ += 3;
  uint64_t session = Connect();
  // Assigned: its series exist, loop depths at 0 for all 3 layers.
  auto m = Science();
  int infos = 0;
  for (const auto& [key, v] : m) {
    if (key.rfind("sgt_run_info{", 0) != 0) continue;
    EXPECT_NE(key.find(R"(run="r1",sweep="grow",variant="sgt")"), std::string::npos) << key;
    infos += 1;
  }
  EXPECT_EQ(infos, 1);
  EXPECT_EQ(m.at(R"(sgt_layer_loop_depth{layer="2",run="r1",sweep="grow"})"), 0);
  auto reg = Registry();
  EXPECT_EQ(reg.at("sgt_scheduling_latency_seconds_count"), 1);
  EXPECT_NEAR(reg.at("sgt_scheduling_latency_seconds_sum"), 3, 1e-9);
  FleetCounts fleet = coord_->Fleet();
  EXPECT_EQ(fleet.workers_connected, 1);
  EXPECT_EQ((fleet.devices[{"cpu", "busy"}]), 1);
  EXPECT_EQ(fleet.runs["assigned"], 1);
  EXPECT_EQ(fleet.queue_depth, 0);

  ASSERT_TRUE(Status(session, v1::RUN_STATE_RUNNING).ok());
  v1::WorkerMessage t;
  v1::TelemetryBatch* b = t.mutable_telemetry();
  b->set_run_id("r1");
  b->set_attempt(1);
  b->set_sequence(1);
  *b->add_decisions() = Decision(20, "activate", 2, 1, {1, 2});
  *b->add_entropy() = Entropy(20, 2, 0, 0.7f);
  ASSERT_TRUE(Send(session, t).ok());
  ASSERT_TRUE(Send(session, t).ok());  // a replay: acknowledged as a duplicate, counted once
  reg = Registry();
  EXPECT_EQ(reg.at(R"(sgt_telemetry_batches_total{result="stored"})"), 1);
  EXPECT_EQ(reg.at(R"(sgt_telemetry_batches_total{result="duplicate"})"), 1);
  EXPECT_EQ(reg.at(R"(sgt_telemetry_rows_ingested_total{kind="entropy"})"), 1);
  EXPECT_EQ(reg.at(R"(sgt_worker_message_duration_seconds_count{kind="telemetry"})"), 2);
  EXPECT_GE(reg.at(R"(sgt_store_write_duration_seconds_count{op="telemetry"})"), 2);
  m = Science();
  EXPECT_EQ(m.at(R"(sgt_layer_loop_depth{layer="2",run="r1",sweep="grow"})"), 1);
  EXPECT_EQ(m.at(R"(sgt_growth_decisions_total{action="activate",run="r1",sweep="grow"})"), 1);

  // The coordinator restarts mid-run: the series come back with the growth so far.
  Open();
  m = Science();
  EXPECT_EQ(m.at(R"(sgt_layer_loop_depth{layer="2",run="r1",sweep="grow"})"), 1);
  EXPECT_EQ(m.at(R"(sgt_run_looped_heads{run="r1",sweep="grow"})"), 2);
  EXPECT_EQ(m.at(R"(sgt_growth_decisions_total{action="activate",run="r1",sweep="grow"})"), 1);

  // The worker comes back holding the attempt, and it ends: the series go.
  v1::RunRef held;
  held.set_run_id("r1");
  held.set_attempt(1);
  held.set_step(20);
  session = Connect({held});
  ASSERT_TRUE(Status(session, v1::RUN_STATE_SUCCEEDED).ok());
  EXPECT_TRUE(Science().empty());
  EXPECT_EQ(coord_->Fleet().runs["succeeded"], 1);
}

TEST_F(CoordinatorMetricsTest, RefusedBatchesAreCounted) {
  v1::SubmitSweepRequest req;
  req.set_yaml(kSweep);
  req.set_source_name("grow.yaml");
  ASSERT_TRUE(coord_->SubmitSweep(req).ok());
  uint64_t session = Connect();
  v1::WorkerMessage t;
  t.mutable_telemetry()->set_run_id("r1");
  t.mutable_telemetry()->set_attempt(7);  // an attempt that does not exist
  t.mutable_telemetry()->set_sequence(1);
  EXPECT_FALSE(Send(session, t).ok());
  t.mutable_telemetry()->set_run_id("r99");
  t.mutable_telemetry()->set_attempt(1);
  EXPECT_FALSE(Send(session, t).ok());
  EXPECT_EQ(Registry().at(R"(sgt_telemetry_batches_total{result="refused"})"), 2);
  EXPECT_EQ(Registry().at(R"(sgt_telemetry_batches_total{result="stored"})"), 0);
}

}  // namespace
}  // namespace sgt::coord
