// Tests for the rules of an attempt (services/worker/attempt_rules.h), table-driven: run ids,
// the device kind of a config, device picking, the StartRuns refused for their shape, the launch
// of the children (argv, environment, directories; one per rank of a data-parallel run) and the
// final status of an ended attempt, with today's reasons word for word.
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
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using ::testing::Not;

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

// A single-rank attempt is launched as before data-parallel runs: one child, no distributed
// environment.
TEST(PlanLaunchTest, CpuRunGetsOneThreadAndItsDirectories) {
  const AttemptLaunch l =
      PlanLaunch(StartOf(R"({"train":{"device":"cpu"}})", 1), Options(), {"cpu:0"}, "", 29999);
  EXPECT_EQ(l.dir, "/var/lib/w/runs/r7/attempt-3");
  EXPECT_EQ(l.checkpoint_dir, "/shared/ck/r7/attempt-3");
  EXPECT_EQ(l.config_path, "/var/lib/w/runs/r7/attempt-3/config.json");
  ASSERT_EQ(l.children.size(), 1u);
  const ChildSpec& c = l.children[0];
  EXPECT_THAT(c.argv, ElementsAre("/opt/sgt/sgt-train", "--config",
                                  "/var/lib/w/runs/r7/attempt-3/config.json", "--out",
                                  "/var/lib/w/runs/r7/attempt-3", "--checkpoint-dir",
                                  "/shared/ck/r7/attempt-3", "--events-fd", "{events_fd}",
                                  "--no-progress", "--set", "train.threads=1"));
  EXPECT_THAT(c.env, IsEmpty());
  // A worker started under a launcher must not pass its own rank variables on: one process.
  EXPECT_THAT(c.unset, ::testing::IsSupersetOf({"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE",
                                                "LOCAL_RANK", "LOCAL_WORLD_SIZE"}));
  EXPECT_EQ(c.stdout_path, "/var/lib/w/runs/r7/attempt-3/stdout.log");
  EXPECT_EQ(c.stderr_path, "/var/lib/w/runs/r7/attempt-3/stderr.log");
}

TEST(PlanLaunchTest, DevicesZeroMeansOneRankAndNoDeviceMeansCpu) {
  const AttemptLaunch l = PlanLaunch(StartOf("{}", 0), Options(), {"cpu:0"}, "");
  ASSERT_EQ(l.children.size(), 1u);
  const std::vector<std::string>& argv = l.children[0].argv;
  ASSERT_GE(argv.size(), 2u);
  EXPECT_EQ(argv[argv.size() - 2], "--set");
  EXPECT_EQ(argv.back(), "train.threads=1");
  EXPECT_THAT(l.children[0].env, IsEmpty());
}

TEST(PlanLaunchTest, CudaRunGetsItsGpuAndResumes) {
  const AttemptLaunch l = PlanLaunch(StartOf(R"({"train":{"device":"cuda"}})", 1), Options(),
                                     {"cuda:3"}, "/shared/ck/r7/attempt-2/step-10.sgtckpt");
  ASSERT_EQ(l.children.size(), 1u);
  EXPECT_THAT(
      l.children[0].argv,
      ElementsAre("/opt/sgt/sgt-train", "--config", "/var/lib/w/runs/r7/attempt-3/config.json",
                  "--out", "/var/lib/w/runs/r7/attempt-3", "--checkpoint-dir",
                  "/shared/ck/r7/attempt-3", "--events-fd", "{events_fd}", "--no-progress",
                  "--resume", "/shared/ck/r7/attempt-2/step-10.sgtckpt"));
  EXPECT_THAT(l.children[0].env, ElementsAre("CUDA_VISIBLE_DEVICES=3"));
}

// N CPU slots are N ranks of one thread each on loopback; only rank 0 gets the events pipe and
// the checkpoint to resume from.
TEST(PlanLaunchTest, CpuSlotsAreRanksOfOneThread) {
  const AttemptLaunch l =
      PlanLaunch(StartOf(R"({"train":{"device":"cpu"}})", 3), Options(),
                 {"cpu:0", "cpu:1", "cpu:2"}, "/shared/ck/r7/a/s.sgtckpt", 41234);
  EXPECT_EQ(l.ranks.world(), 3);
  ASSERT_EQ(l.children.size(), 3u);
  const std::string d = "/var/lib/w/runs/r7/attempt-3";
  EXPECT_THAT(l.children[0].argv,
              ElementsAre("/opt/sgt/sgt-train", "--config", d + "/config.json", "--out", d,
                          "--checkpoint-dir", "/shared/ck/r7/attempt-3", "--events-fd",
                          "{events_fd}", "--no-progress", "--resume", "/shared/ck/r7/a/s.sgtckpt",
                          "--set", "train.threads=1"));
  for (size_t i = 1; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(l.children[i].argv,
                ElementsAre("/opt/sgt/sgt-train", "--config", d + "/config.json", "--out", d,
                            "--checkpoint-dir", "/shared/ck/r7/attempt-3", "--no-progress", "--set",
                            "train.threads=1"));
  }
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(l.children[i].env,
                ElementsAre("MASTER_ADDR=127.0.0.1", "MASTER_PORT=41234", absl::StrCat("RANK=", i),
                            "WORLD_SIZE=3", absl::StrCat("LOCAL_RANK=", i), "LOCAL_WORLD_SIZE=3"));
  }
  EXPECT_EQ(l.children[0].stdout_path, d + "/stdout.log");
  EXPECT_EQ(l.children[0].stderr_path, d + "/stderr.log");
  EXPECT_EQ(l.children[1].stdout_path, d + "/rank-1.stdout.log");
  EXPECT_EQ(l.children[2].stderr_path, d + "/rank-2.stderr.log");
}

// On CUDA every rank sees all the attempt's GPUs and picks cuda:LOCAL_RANK itself.
TEST(PlanLaunchTest, CudaRanksSeeEveryGpuOfTheAttempt) {
  const AttemptLaunch l = PlanLaunch(StartOf(R"({"train":{"device":"cuda"}})", 2), Options(),
                                     {"cuda:1", "cuda:3"}, "", 50001);
  ASSERT_EQ(l.children.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(l.children[i].env,
                ElementsAre("CUDA_VISIBLE_DEVICES=1,3", "MASTER_ADDR=127.0.0.1",
                            "MASTER_PORT=50001", absl::StrCat("RANK=", i), "WORLD_SIZE=2",
                            absl::StrCat("LOCAL_RANK=", i), "LOCAL_WORLD_SIZE=2"));
    EXPECT_THAT(l.children[i].argv, Not(Contains("--set")));
  }
  EXPECT_THAT(l.children[0].argv, Contains("--events-fd"));
  EXPECT_THAT(l.children[1].argv, Not(Contains("--events-fd")));
}

v1::StartRun OnNode(v1::StartRun s, int nodes, int node_rank, const std::string& addr = "w1.lan",
                    int port = 29500) {
  s.mutable_rendezvous()->set_nodes(nodes);
  s.mutable_rendezvous()->set_node_rank(node_rank);
  s.mutable_rendezvous()->set_master_addr(addr);
  s.mutable_rendezvous()->set_master_port(port);
  return s;
}

// Node 1 of 2 with 2 devices each runs global ranks 2 and 3, meeting at the rendezvous; rank 0 is
// elsewhere, so no rank here gets the events pipe or the checkpoint, and no log keeps rank 0's
// names.
TEST(PlanLaunchTest, SecondNodeRunsTheRanksAfterTheFirstNodes) {
  const AttemptLaunch l =
      PlanLaunch(OnNode(StartOf(R"({"train":{"device":"cpu"}})", 2), 2, 1), Options(),
                 {"cpu:0", "cpu:1"}, "/shared/ck/r7/a/s.sgtckpt", 41234);
  EXPECT_EQ(l.ranks.first(), 2);
  EXPECT_EQ(l.ranks.world(), 4);
  ASSERT_EQ(l.children.size(), 2u);
  const std::string d = "/var/lib/w/runs/r7/attempt-3";
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(l.children[i].argv,
                ElementsAre("/opt/sgt/sgt-train", "--config", d + "/config.json", "--out", d,
                            "--checkpoint-dir", "/shared/ck/r7/attempt-3", "--no-progress", "--set",
                            "train.threads=1"));
    EXPECT_THAT(l.children[i].env,
                ElementsAre("MASTER_ADDR=w1.lan", "MASTER_PORT=29500", absl::StrCat("RANK=", 2 + i),
                            "WORLD_SIZE=4", absl::StrCat("LOCAL_RANK=", i), "LOCAL_WORLD_SIZE=2"));
  }
  EXPECT_EQ(l.children[0].stdout_path, d + "/rank-2.stdout.log");
  EXPECT_EQ(l.children[1].stderr_path, d + "/rank-3.stderr.log");
}

// Node 0 of a run of two one-device nodes: rank 0 alone here, and still distributed.
TEST(PlanLaunchTest, FirstNodeOfTwoKeepsRankZerosPartsAndTheRendezvous) {
  const AttemptLaunch l =
      PlanLaunch(OnNode(StartOf(R"({"train":{"device":"cuda"}})", 1), 2, 0, "10.0.0.5", 29517),
                 Options(), {"cuda:0"}, "/shared/ck/r7/a/s.sgtckpt", 41234);
  ASSERT_EQ(l.children.size(), 1u);
  EXPECT_THAT(l.children[0].argv, Contains("--events-fd"));
  EXPECT_THAT(l.children[0].argv, Contains("--resume"));
  EXPECT_THAT(l.children[0].env,
              ElementsAre("CUDA_VISIBLE_DEVICES=0", "MASTER_ADDR=10.0.0.5", "MASTER_PORT=29517",
                          "RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0", "LOCAL_WORLD_SIZE=1"));
  EXPECT_EQ(l.children[0].stderr_path, "/var/lib/w/runs/r7/attempt-3/stderr.log");
}

// A rendezvous of one node (or none) is a local run: its master fields are not used.
TEST(PlanLaunchTest, RendezvousOfOneNodeIsLocal) {
  const AttemptLaunch l = PlanLaunch(OnNode(StartOf(R"({"train":{"device":"cpu"}})", 1), 1, 0),
                                     Options(), {"cpu:0"}, "", 41234);
  ASSERT_EQ(l.children.size(), 1u);
  EXPECT_THAT(l.children[0].env, IsEmpty());
  const AttemptLaunch two = PlanLaunch(OnNode(StartOf(R"({"train":{"device":"cpu"}})", 2), 1, 0),
                                       Options(), {"cpu:0", "cpu:1"}, "", 41234);
  ASSERT_EQ(two.children.size(), 2u);
  EXPECT_THAT(two.children[1].env, Contains("MASTER_ADDR=127.0.0.1"));
  EXPECT_THAT(two.children[1].env, Contains("MASTER_PORT=41234"));
}

TEST(CheckStartRunTest, GoodShapesPass) {
  const v1::StartRun one = StartOf("{}", 1);
  EXPECT_TRUE(CheckStartRun(one).ok());
  EXPECT_TRUE(CheckStartRun(StartOf("{}", 8)).ok());
  EXPECT_TRUE(CheckStartRun(OnNode(one, 1, 0, "", 0)).ok());  // one node: master unused
  EXPECT_TRUE(CheckStartRun(OnNode(one, 2, 1)).ok());
  EXPECT_TRUE(CheckStartRun(OnNode(one, 3, 0, "10.0.0.5", 65535)).ok());
  EXPECT_TRUE(CheckStartRun(OnNode(one, 2, 1, "w1", 1)).ok());
}

TEST(CheckStartRunTest, BadShapesAreRefusedWithTheReason) {
  struct Case {
    v1::StartRun s;
    std::string reason;
  };
  const v1::StartRun one = StartOf("{}", 1);
  const std::string b = "bad StartRun from the coordinator: ";
  const Case cases[] = {
      {StartOf("{}", 0), b + "devices is 0; a run needs at least 1"},
      {StartOf("{}", -2), b + "devices is -2; a run needs at least 1"},
      {OnNode(one, -1, 0), b + "rendezvous nodes is -1; it needs at least 1"},
      {OnNode(one, 1, 1), b + "rendezvous node_rank 1 of a run on one node; it must be 0"},
      {OnNode(one, 0, 3), b + "rendezvous node_rank 3 of a run on one node; it must be 0"},
      {OnNode(one, 2, 2), b + "rendezvous node_rank 2 is not in [0, 2)"},
      {OnNode(one, 2, -1), b + "rendezvous node_rank -1 is not in [0, 2)"},
      {OnNode(one, 2, 1, ""), b + "rendezvous of 2 nodes has no master_addr"},
      {OnNode(one, 2, 1, "  "), b + "rendezvous of 2 nodes has no master_addr"},
      {OnNode(one, 2, 1, "w1", 0), b + "rendezvous master_port 0 is not in 1..65535"},
      {OnNode(one, 2, 1, "w1", 65536), b + "rendezvous master_port 65536 is not in 1..65535"},
      {OnNode(one, 2, 1, "w1", -5), b + "rendezvous master_port -5 is not in 1..65535"},
      {OnNode(StartOf("{}", 65536), 2, 0),
       b + "2 nodes of 65536 devices are more than 65536 ranks"},
  };
  for (const Case& c : cases) {
    const absl::Status st = CheckStartRun(c.s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.reason;
    EXPECT_EQ(st.message(), c.reason);
  }
}

TEST(RanksOfTest, DevicesAndRendezvous) {
  const Ranks one = RanksOf(StartOf("{}", 1));
  EXPECT_EQ(one.world(), 1);
  EXPECT_TRUE(one.single());
  const Ranks four = RanksOf(StartOf("{}", 4));
  EXPECT_EQ(four.world(), 4);
  EXPECT_EQ(four.first(), 0);
  EXPECT_FALSE(four.single());
  const Ranks node2 = RanksOf(OnNode(StartOf("{}", 4), 3, 2));
  EXPECT_EQ(node2.world(), 12);
  EXPECT_EQ(node2.first(), 8);
  EXPECT_EQ(node2.local, 4);
  const Ranks remote_one = RanksOf(OnNode(StartOf("{}", 1), 2, 1));
  EXPECT_FALSE(remote_one.single());
  EXPECT_EQ(remote_one.first(), 1);
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

// The final status of a data-parallel attempt: rank 0 decides where it runs, unless another rank
// failed first; a node without rank 0 reports its own ranks.
TEST(FinalStatusTest, DataParallel) {
  struct Case {
    std::string name;
    int nodes, node_rank, local;
    std::vector<std::string> events;  // local rank 0's (none away from node 0)
    int wait_status;                  // local rank 0's
    bool others_clean;
    int failed_rank;
    int failed_wait_status;
    bool cancelled, shutting_down;
    v1::RunState state;
    std::string reason;
    std::string stderr_tail;  // expected
  };
  const std::string tail0 = "sgt-train: collective timed out after 300 s\n";
  const std::string tail1 = "loading\nsgt-train: cannot read /data/x/train.u16\n";
  const Case cases[] = {
      {"a rank fails first: it is named, with its stderr",
       1,
       0,
       2,
       {kStart, kScalars},
       SIGTERM,
       false,
       1,
       Exited(2),
       false,
       false,
       v1::RUN_STATE_FAILED,
       "rank 1 exited with status 2 on w2: cannot read /data/x/train.u16",
       tail1},
      {"a rank crashes first",
       1,
       0,
       4,
       {kStart, kScalars},
       Exited(1),
       false,
       3,
       SIGSEGV,
       false,
       false,
       v1::RUN_STATE_FAILED,
       "rank 3 was killed by signal 11 (Segmentation fault) at step 5 on w2",
       tail1},
      {"rank 0 fails first: as a single process",
       1,
       0,
       2,
       {kStart, kScalars},
       Exited(1),
       false,
       0,
       Exited(1),
       false,
       false,
       v1::RUN_STATE_FAILED,
       "collective timed out after 300 s (exit status 1 on w2)",
       tail0},
      {"rank 0's error event wins",
       1,
       0,
       2,
       {kStart, kScalars, kError},
       Exited(1),
       false,
       1,
       Exited(1),
       false,
       false,
       v1::RUN_STATE_FAILED,
       "non-finite loss at step 6 (exit status 1 on w2)",
       tail0},
      {"every rank succeeds",
       1,
       0,
       2,
       {kStart, kSucceeded},
       Exited(0),
       true,
       -1,
       0,
       false,
       false,
       v1::RUN_STATE_SUCCEEDED,
       "",
       ""},
      {"rank 0 succeeded; a rank failed after it",
       2,
       0,
       2,
       {kStart, kSucceeded},
       Exited(0),
       false,
       1,
       Exited(1),
       false,
       false,
       v1::RUN_STATE_SUCCEEDED,
       "",
       ""},
      {"every rank pauses",
       2,
       0,
       2,
       {kStart, kPaused},
       Exited(0),
       true,
       -1,
       0,
       false,
       false,
       v1::RUN_STATE_PAUSED,
       "paused at step 6 on w2",
       ""},
      {"cancelled",
       1,
       0,
       2,
       {kStart},
       SIGTERM,
       false,
       -1,
       0,
       true,
       false,
       v1::RUN_STATE_CANCELLED,
       "cancelled",
       ""},
      {"stopped by the shutdown",
       1,
       0,
       2,
       {kStart},
       SIGTERM,
       false,
       -1,
       0,
       false,
       true,
       v1::RUN_STATE_LOST,
       "w2 shut down; the run goes back to the queue",
       ""},
      {"node 0 lost the other node (exit 3): LOST, back to the queue",
       2,
       0,
       1,
       {kStart, kScalars},
       Exited(3),
       true,
       -1,
       0,
       false,
       false,
       v1::RUN_STATE_LOST,
       "rank 0 lost contact with another node at step 5 on w2 (collective timed out after 300 "
       "s); the run goes back to the queue",
       tail0},
      {"another node lost node 0 (its rank exits 3 first): LOST",
       2,
       1,
       2,
       {},
       SIGTERM,
       false,
       3,
       Exited(3),
       false,
       false,
       v1::RUN_STATE_LOST,
       "rank 3 lost contact with another node at step 0 on w2 (cannot read /data/x/train.u16); "
       "the run goes back to the queue",
       tail1},
      {"one node: a rank's exit 3 is a failure (its peers are all here)",
       1,
       0,
       2,
       {kStart, kScalars},
       Exited(3),
       false,
       0,
       Exited(3),
       false,
       false,
       v1::RUN_STATE_FAILED,
       "collective timed out after 300 s (exit status 3 on w2)",
       tail0},
      {"another node: every rank exits 0",
       2,
       1,
       2,
       {},
       Exited(0),
       true,
       -1,
       0,
       false,
       false,
       v1::RUN_STATE_SUCCEEDED,
       "node 1 of 2: ranks 2-3 exited cleanly on w2",
       ""},
      {"another node of one rank",
       3,
       2,
       1,
       {},
       Exited(0),
       true,
       -1,
       0,
       false,
       false,
       v1::RUN_STATE_SUCCEEDED,
       "node 2 of 3: rank 2 exited cleanly on w2",
       ""},
      {"another node: a rank fails",
       2,
       1,
       2,
       {},
       SIGTERM,
       false,
       3,
       Exited(1),
       false,
       false,
       v1::RUN_STATE_FAILED,
       "rank 3 exited with status 1 on w2: cannot read /data/x/train.u16",
       tail1},
      {"another node: its first rank fails",
       2,
       1,
       2,
       {},
       Exited(1),
       true,
       2,
       Exited(1),
       false,
       false,
       v1::RUN_STATE_FAILED,
       "rank 2 exited with status 1 on w2: cannot read /data/x/train.u16",
       tail1},
      {"another node, cancelled",
       2,
       1,
       2,
       {},
       SIGTERM,
       false,
       -1,
       0,
       true,
       false,
       v1::RUN_STATE_CANCELLED,
       "cancelled",
       ""},
      {"another node, shut down",
       2,
       1,
       2,
       {},
       SIGTERM,
       false,
       -1,
       0,
       false,
       true,
       v1::RUN_STATE_LOST,
       "w2 shut down; the run goes back to the queue",
       ""},
      {"another node, done as the worker shuts down",
       2,
       1,
       2,
       {},
       Exited(0),
       true,
       -1,
       0,
       false,
       true,
       v1::RUN_STATE_SUCCEEDED,
       "node 1 of 2: ranks 2-3 exited cleanly on w2",
       ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    AttemptEnd e;
    e.run_id = "r4";
    e.attempt = 2;
    e.worker_id = "w2";
    e.ranks.nodes = c.nodes;
    e.ranks.node_rank = c.node_rank;
    e.ranks.local = c.local;
    e.wait_status = c.wait_status;
    e.stderr_tail = tail0;
    e.others_clean = c.others_clean;
    e.failed_rank = c.failed_rank;
    e.failed_wait_status = c.failed_wait_status;
    e.failed_stderr_tail = c.failed_rank < 0 ? "" : (c.failed_rank == 0 ? tail0 : tail1);
    e.cancelled = c.cancelled;
    e.shutting_down = c.shutting_down;
    const v1::RunStatus s = FinalStatus(e, Saw(c.events));
    EXPECT_EQ(s.state(), c.state) << v1::RunState_Name(s.state());
    EXPECT_EQ(s.reason(), c.reason);
    EXPECT_EQ(s.stderr_tail(), c.stderr_tail);
    // Only rank 0 has a summary.
    const bool summary =
        c.node_rank == 0 && (c.state == v1::RUN_STATE_SUCCEEDED || c.state == v1::RUN_STATE_PAUSED);
    EXPECT_EQ(!s.summary_json().empty(), summary);
  }
}

}  // namespace
}  // namespace sgt::worker
