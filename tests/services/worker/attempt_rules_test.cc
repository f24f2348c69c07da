// Tests for the rules of an attempt (services/worker/attempt_rules.h), table-driven: run ids,
// the device kind of a config, device picking, the launch of the child (argv, environment,
// directories) and the final status of an ended child, with today's reasons word for word.
#include "services/worker/attempt_rules.h"

#include <csignal>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sgt::worker {
namespace {

namespace v1 = sgt::v1;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

TEST(AttemptKeyTest, RunSlashAttempt) {
  EXPECT_EQ(AttemptKey("r3", 2), "r3/2");
  EXPECT_EQ(AttemptKey("r12", 10), "r12/10");
}

TEST(ValidRunIdTest, OnlyTheCoordinatorsForm) {
  struct Case {
    std::string id;
    bool valid;
  };
  const Case cases[] = {
      {"r1", true},
      {"r1234567890123456789", true},    // 20 characters
      {"r12345678901234567890", false},  // 21
      {"r", false},
      {"", false},
      {"x1", false},
      {"R1", false},
      {"r1a", false},
      {"r-1", false},
      {"r1/../x", false},
      {"../r1", false},
  };
  for (const Case& c : cases) EXPECT_EQ(ValidRunId(c.id), c.valid) << "'" << c.id << "'";
}

TEST(RunDeviceKindTest, FromTrainDevice) {
  struct Case {
    std::string config;
    std::string kind;
  };
  const Case cases[] = {
      {"{}", "cpu"},
      {R"({"train":{"device":"cuda"}})", "cuda"},
      {R"({"train":{"device":"cpu","seed":3}})", "cpu"},
      {R"({"train":{"device":3}})", "cpu"},  // mistyped: the default
      {R"({"train":"cuda"})", "cpu"},
      {R"({"model":{"layers":2},"train":{"device":"rocm"}})", "rocm"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> kind = RunDeviceKind(c.config);
    ASSERT_TRUE(kind.ok()) << c.config << ": " << kind.status();
    EXPECT_EQ(*kind, c.kind) << c.config;
  }
}

TEST(RunDeviceKindTest, NotAnObjectIsRefused) {
  for (const std::string config : {"", "not json", "[]", "3", R"("cuda")", "{"}) {
    absl::StatusOr<std::string> kind = RunDeviceKind(config);
    ASSERT_FALSE(kind.ok()) << "'" << config << "' gave " << *kind;
    EXPECT_EQ(kind.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(kind.status().message(), "config_json is not a JSON object");
  }
}

v1::Device Dev(const std::string& kind, int index) {
  v1::Device d;
  d.set_kind(kind);
  d.set_id(absl::StrCat(kind, ":", index));
  return d;
}

TEST(PickDevicesTest, FirstFreeOfTheKind) {
  const std::vector<v1::Device> devices = {Dev("cpu", 0), Dev("cpu", 1), Dev("cuda", 0),
                                           Dev("cpu", 2), Dev("cuda", 1)};
  struct Case {
    std::map<std::string, std::string> busy;
    std::string kind;
    int want;
    std::vector<std::string> picked;
  };
  const Case cases[] = {
      {{}, "cpu", 1, {"cpu:0"}},
      {{}, "cpu", 2, {"cpu:0", "cpu:1"}},
      {{}, "cpu", 3, {"cpu:0", "cpu:1", "cpu:2"}},
      {{}, "cpu", 4, {"cpu:0", "cpu:1", "cpu:2"}},  // fewer than wanted: the caller refuses
      {{{"cpu:0", "r1/1"}}, "cpu", 2, {"cpu:1", "cpu:2"}},
      {{{"cpu:0", "r1/1"}, {"cpu:1", "r2/1"}, {"cpu:2", "r3/1"}}, "cpu", 1, {}},
      {{}, "cuda", 2, {"cuda:0", "cuda:1"}},
      {{{"cuda:0", "r1/1"}}, "cuda", 1, {"cuda:1"}},
      {{}, "rocm", 1, {}},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(PickDevices(devices, c.busy, c.kind, c.want), ElementsAreArray(c.picked))
        << c.kind << " x" << c.want << " with " << c.busy.size() << " busy";
  }
}

AttemptOptions Options() {
  AttemptOptions o;
  o.work_dir = "/var/lib/w";
  o.checkpoint_root = "/shared/ck";
  o.train_program = "/opt/sgt/sgt-train";
  return o;
}

v1::StartRun StartOf(const std::string& config, int devices) {
  v1::StartRun s;
  s.set_run_id("r7");
  s.set_attempt(3);
  s.set_config_json(config);
  s.set_devices(devices);
  return s;
}

TEST(PlanLaunchTest, CpuRunGetsThreadsAndItsDirectories) {
  const AttemptLaunch l =
      PlanLaunch(StartOf(R"({"train":{"device":"cpu"}})", 2), Options(), {"cpu:0", "cpu:1"}, "");
  EXPECT_EQ(l.dir, "/var/lib/w/runs/r7/attempt-3");
  EXPECT_EQ(l.checkpoint_dir, "/shared/ck/r7/attempt-3");
  EXPECT_EQ(l.config_path, "/var/lib/w/runs/r7/attempt-3/config.json");
  EXPECT_THAT(l.child.argv, ElementsAre("/opt/sgt/sgt-train", "--config",
                                        "/var/lib/w/runs/r7/attempt-3/config.json", "--out",
                                        "/var/lib/w/runs/r7/attempt-3", "--checkpoint-dir",
                                        "/shared/ck/r7/attempt-3", "--events-fd", "{events_fd}",
                                        "--no-progress", "--set", "train.threads=2"));
  EXPECT_THAT(l.child.env, IsEmpty());
  EXPECT_EQ(l.child.stdout_path, "/var/lib/w/runs/r7/attempt-3/stdout.log");
  EXPECT_EQ(l.child.stderr_path, "/var/lib/w/runs/r7/attempt-3/stderr.log");
}

TEST(PlanLaunchTest, DevicesZeroMeansOneThreadAndNoDeviceMeansCpu) {
  const AttemptLaunch l = PlanLaunch(StartOf("{}", 0), Options(), {"cpu:0"}, "");
  ASSERT_GE(l.child.argv.size(), 2u);
  EXPECT_EQ(l.child.argv[l.child.argv.size() - 2], "--set");
  EXPECT_EQ(l.child.argv.back(), "train.threads=1");
}

TEST(PlanLaunchTest, CudaRunGetsItsGpusAndResumes) {
  const AttemptLaunch l =
      PlanLaunch(StartOf(R"({"train":{"device":"cuda"}})", 2), Options(), {"cuda:1", "cuda:3"},
                 "/shared/ck/r7/attempt-2/step-10.sgtckpt");
  EXPECT_THAT(
      l.child.argv,
      ElementsAre("/opt/sgt/sgt-train", "--config", "/var/lib/w/runs/r7/attempt-3/config.json",
                  "--out", "/var/lib/w/runs/r7/attempt-3", "--checkpoint-dir",
                  "/shared/ck/r7/attempt-3", "--events-fd", "{events_fd}", "--no-progress",
                  "--resume", "/shared/ck/r7/attempt-2/step-10.sgtckpt"));
  EXPECT_THAT(l.child.env, ElementsAre("CUDA_VISIBLE_DEVICES=1,3"));
}

// A translator that has read `lines` (each must be a good event line).
EventTranslator Saw(const std::vector<std::string>& lines) {
  EventTranslator t;
  v1::TelemetryBatch batch;
  for (const std::string& line : lines) {
    absl::Status s = t.Add(line, &batch);
    EXPECT_TRUE(s.ok()) << line << ": " << s;
  }
  return t;
}

constexpr char kStart[] = R"({"event":"start","time":1,"step":0})";
constexpr char kScalars[] = R"({"event":"scalars","time":2,"step":5,"loss":2.5})";
constexpr char kSucceeded[] =
    R"({"event":"end","time":3,"status":"succeeded","step":6,"final_loss":2.25})";
constexpr char kPaused[] = R"({"event":"end","time":3,"status":"paused","step":6})";
constexpr char kError[] = R"({"event":"error","time":3,"message":"non-finite loss","step":6})";

int Exited(int code) { return code << 8; }

TEST(FinalStatusTest, Table) {
  struct Case {
    std::string name;
    std::vector<std::string> events;
    int wait_status;
    bool cancelled, killed, shutting_down;
    std::string stderr_tail;
    v1::RunState state;
    std::string reason;
    std::string summary;  // "" when none
  };
  const std::string tail = "loading\nsgt-train: cannot read /data/nowhere/train.u16\n\n";
  const Case cases[] = {
      {"succeeded",
       {kStart, kScalars, kSucceeded},
       Exited(0),
       false,
       false,
       false,
       tail,
       v1::RUN_STATE_SUCCEEDED,
       "",
       R"({"status":"succeeded","step":6,"final_loss":2.25})"},
      {"paused",
       {kStart, kScalars, kPaused},
       Exited(0),
       false,
       false,
       false,
       "",
       v1::RUN_STATE_PAUSED,
       "paused at step 6 on w2",
       R"({"status":"paused","step":6})"},
      {"exit 0 without an end",
       {kStart, kScalars},
       Exited(0),
       false,
       false,
       false,
       tail,
       v1::RUN_STATE_FAILED,
       "sgt-train exited without reporting an end (exit status 0 on w2)",
       ""},
      {"an end then a non-zero exit",
       {kStart, kSucceeded},
       Exited(1),
       false,
       false,
       false,
       tail,
       v1::RUN_STATE_FAILED,
       "cannot read /data/nowhere/train.u16 (exit status 1 on w2)",
       ""},
      {"its last stderr line, without sgt-train:",
       {kStart},
       Exited(2),
       false,
       false,
       false,
       tail,
       v1::RUN_STATE_FAILED,
       "cannot read /data/nowhere/train.u16 (exit status 2 on w2)",
       ""},
      {"a last stderr line of its own words",
       {},
       Exited(127),
       false,
       false,
       false,
       "sh: cannot execute /x\n",
       v1::RUN_STATE_FAILED,
       "sh: cannot execute /x (exit status 127 on w2)",
       ""},
      {"an error event wins",
       {kStart, kScalars, kError},
       Exited(1),
       false,
       false,
       false,
       tail,
       v1::RUN_STATE_FAILED,
       "non-finite loss at step 6 (exit status 1 on w2)",
       ""},
      {"exit status, nothing on stderr",
       {kStart, kScalars},
       Exited(3),
       false,
       false,
       false,
       "",
       v1::RUN_STATE_FAILED,
       "sgt-train crashed at step 5 (exit status 3 on w2)",
       ""},
      {"a signal it was not sent",
       {kStart, kScalars},
       SIGSEGV,
       false,
       false,
       false,
       tail,
       v1::RUN_STATE_FAILED,
       "sgt-train crashed at step 5 (killed by signal 11 (Segmentation fault) on w2)",
       ""},
      {"cancelled",
       {kStart, kScalars},
       SIGTERM,
       true,
       false,
       false,
       tail,
       v1::RUN_STATE_CANCELLED,
       "cancelled",
       ""},
      {"cancelled, killed",
       {kStart},
       SIGKILL,
       true,
       true,
       false,
       "",
       v1::RUN_STATE_CANCELLED,
       "cancelled (killed after 1.5 s of SIGTERM)",
       ""},
      {"cancelled but it had succeeded",
       {kStart, kSucceeded},
       Exited(0),
       true,
       false,
       false,
       "",
       v1::RUN_STATE_CANCELLED,
       "cancelled",
       ""},
      {"cancelled while shutting down",
       {kStart},
       SIGTERM,
       true,
       false,
       true,
       "",
       v1::RUN_STATE_CANCELLED,
       "cancelled",
       ""},
      {"stopped by the shutdown",
       {kStart, kScalars},
       SIGTERM,
       false,
       false,
       true,
       tail,
       v1::RUN_STATE_LOST,
       "w2 shut down; the run goes back to the queue",
       ""},
      {"failed during the shutdown",
       {kStart, kError},
       Exited(1),
       false,
       false,
       true,
       tail,
       v1::RUN_STATE_LOST,
       "w2 shut down; the run goes back to the queue",
       ""},
      {"succeeded during the shutdown",
       {kStart, kSucceeded},
       Exited(0),
       false,
       false,
       true,
       "",
       v1::RUN_STATE_SUCCEEDED,
       "",
       R"({"status":"succeeded","step":6,"final_loss":2.25})"},
      {"paused during the shutdown",
       {kStart, kPaused},
       Exited(0),
       false,
       false,
       true,
       "",
       v1::RUN_STATE_PAUSED,
       "paused at step 6 on w2",
       R"({"status":"paused","step":6})"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    AttemptEnd e;
    e.run_id = "r4";
    e.attempt = 2;
    e.worker_id = "w2";
    e.wait_status = c.wait_status;
    e.cancelled = c.cancelled;
    e.killed = c.killed;
    e.cancel_grace_s = 1.5;
    e.shutting_down = c.shutting_down;
    e.stderr_tail = c.stderr_tail;
    const EventTranslator t = Saw(c.events);
    const v1::RunStatus s = FinalStatus(e, t);
    EXPECT_EQ(s.run_id(), "r4");
    EXPECT_EQ(s.attempt(), 2);
    EXPECT_EQ(s.step(), t.step());
    EXPECT_EQ(s.state(), c.state) << v1::RunState_Name(s.state());
    EXPECT_EQ(s.reason(), c.reason);
    EXPECT_EQ(s.summary_json(), c.summary);
    // Only a failure carries the stderr tail, whole.
    EXPECT_EQ(s.stderr_tail(), c.state == v1::RUN_STATE_FAILED ? c.stderr_tail : "");
  }
}

}  // namespace
}  // namespace sgt::worker
