// The rules of an attempt as pure functions: run ids, the StartRun's shape, device picking, the
// launch of its ranks, the final status (attempt_rules.h).
#include "services/worker/attempt_rules.h"

#include <sys/wait.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libsgt/core/config.h"
#include "libsgt/core/event_log.h"

namespace sgt::worker {

namespace v1 = sgt::v1;
namespace fs = std::filesystem;

std::string AttemptKey(const std::string& run_id, int32_t attempt) {
  return absl::StrCat(run_id, "/", attempt);
}

bool ValidRunId(const std::string& id) {
  if (id.size() < 2 || id.size() > 20 || id[0] != 'r') return false;
  return std::all_of(id.begin() + 1, id.end(), [](char c) { return c >= '0' && c <= '9'; });
}

absl::StatusOr<std::string> RunDeviceKind(const std::string& config_json) {
  const RunConfigBrief brief = BriefOfConfigJson(config_json);
  if (!brief.is_object) return absl::InvalidArgumentError("config_json is not a JSON object");
  return brief.device;
}

std::vector<std::string> PickDevices(const std::vector<v1::Device>& devices,
                                     const std::map<std::string, std::string>& busy,
                                     const std::string& kind, int want) {
  std::vector<std::string> picked;
  for (const v1::Device& d : devices) {
    if (static_cast<int>(picked.size()) < want && d.kind() == kind && !busy.count(d.id())) {
      picked.push_back(d.id());
    }
  }
  return picked;
}

Ranks RanksOf(const v1::StartRun& s) {
  Ranks r;
  r.local = std::max(1, s.devices());
  if (s.rendezvous().nodes() > 1) {
    r.nodes = s.rendezvous().nodes();
    r.node_rank = s.rendezvous().node_rank();
  }
  return r;
}

absl::Status CheckStartRun(const v1::StartRun& s) {
  auto bad = [](auto&&... why) {
    return absl::InvalidArgumentError(absl::StrCat("bad StartRun from the coordinator: ", why...));
  };
  if (s.devices() < 1) return bad("devices is ", s.devices(), "; a run needs at least 1");
  const v1::Rendezvous& r = s.rendezvous();
  if (r.nodes() < 0) return bad("rendezvous nodes is ", r.nodes(), "; it needs at least 1");
  if (r.nodes() <= 1) {
    if (r.node_rank() != 0) {
      return bad("rendezvous node_rank ", r.node_rank(), " of a run on one node; it must be 0");
    }
    return absl::OkStatus();
  }
  if (r.node_rank() < 0 || r.node_rank() >= r.nodes()) {
    return bad("rendezvous node_rank ", r.node_rank(), " is not in [0, ", r.nodes(), ")");
  }
  if (static_cast<int64_t>(r.nodes()) * s.devices() > kMaxWorldSize) {
    return bad(r.nodes(), " nodes of ", s.devices(), " devices are more than ", kMaxWorldSize,
               " ranks");
  }
  if (absl::StripAsciiWhitespace(r.master_addr()).empty()) {
    return bad("rendezvous of ", r.nodes(), " nodes has no master_addr");
  }
  if (r.master_port() < 1 || r.master_port() > 65535) {
    return bad("rendezvous master_port ", r.master_port(), " is not in 1..65535");
  }
  return absl::OkStatus();
}

AttemptLaunch PlanLaunch(const v1::StartRun& s, const AttemptOptions& o,
                         const std::vector<std::string>& devices, const std::string& resume,
                         int local_master_port) {
  const std::string tag = absl::StrCat("attempt-", s.attempt());
  const fs::path dir = fs::path(o.work_dir) / "runs" / s.run_id() / tag;
  const fs::path ckdir = fs::path(o.checkpoint_root) / s.run_id() / tag;
  AttemptLaunch l;
  l.dir = dir.string();
  l.checkpoint_dir = ckdir.string();
  l.config_path = (dir / "config.json").string();
  l.ranks = RanksOf(s);
  const Ranks& r = l.ranks;
  const bool cpu = sgt::BriefOfConfigJson(s.config_json()).device == "cpu";
  std::vector<std::string> gpus;
  for (const std::string& d : devices) gpus.push_back(d.substr(d.find(':') + 1));
  for (int local = 0; local < r.local; ++local) {
    const int rank = r.first() + local;
    ChildSpec spec;
    spec.argv = {o.train_program, "--config",         l.config_path,   "--out",
                 l.dir,           "--checkpoint-dir", l.checkpoint_dir};
    // Rank 0 alone writes events and checkpoints, and reads the checkpoint it then broadcasts.
    if (rank == 0) spec.argv.insert(spec.argv.end(), {"--events-fd", "{events_fd}"});
    spec.argv.push_back("--no-progress");
    if (rank == 0 && !resume.empty()) spec.argv.insert(spec.argv.end(), {"--resume", resume});
    if (cpu) {
      spec.argv.insert(spec.argv.end(), {"--set", "train.threads=1"});
    } else {
      spec.env.push_back(absl::StrCat("CUDA_VISIBLE_DEVICES=", absl::StrJoin(gpus, ",")));
    }
    // A worker started by a launcher (srun, torchrun) has such variables of its own: a child
    // must see only its attempt's, or none (one process).
    spec.unset = {"MASTER_ADDR", "MASTER_PORT",      "RANK",      "WORLD_SIZE",
                  "LOCAL_RANK",  "LOCAL_WORLD_SIZE", "GROUP_RANK", "SGT_DIST_BUCKET_MB"};
    if (!r.single()) {
      const bool remote = r.nodes > 1;
      spec.env.insert(
          spec.env.end(),
          {absl::StrCat("MASTER_ADDR=", remote ? s.rendezvous().master_addr() : "127.0.0.1"),
           absl::StrCat("MASTER_PORT=", remote ? s.rendezvous().master_port() : local_master_port),
           absl::StrCat("RANK=", rank), absl::StrCat("WORLD_SIZE=", r.world()),
           absl::StrCat("LOCAL_RANK=", local), absl::StrCat("LOCAL_WORLD_SIZE=", r.local)});
    }
    const std::string prefix = rank == 0 ? "" : absl::StrCat("rank-", rank, ".");
    spec.stdout_path = (dir / (prefix + "stdout.log")).string();
    spec.stderr_path = (dir / (prefix + "stderr.log")).string();
    l.children.push_back(std::move(spec));
  }
  return l;
}

namespace {

// The last non-empty line of a stderr tail, without sgt-train's "sgt-train: ": why it exited,
// in its words.
std::string LastLine(const std::string& stderr_tail) {
  std::string last;
  for (absl::string_view line : absl::StrSplit(stderr_tail, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) last = std::string(line);
  }
  return std::string(absl::StripPrefix(last, "sgt-train: "));
}

bool Clean(int wait_status) { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0; }

// "rank 1 exited with status 1 on w2: WHY" or "rank 1 was killed by signal 9 (Killed) at step 5
// on w2".
std::string RankFailure(int rank, int st, const std::string& stderr_tail, int64_t step,
                        const std::string& worker_id) {
  if (WIFEXITED(st)) {
    const std::string why = LastLine(stderr_tail);
    return absl::StrCat("rank ", rank, " exited with status ", WEXITSTATUS(st), " on ", worker_id,
                        why.empty() ? "" : ": ", why);
  }
  std::string how = Child::DescribeExit(st);  // "killed by signal 9 (Killed)"
  if (WIFSIGNALED(st)) how = absl::StrCat("was ", how, " at step ", step);
  return absl::StrCat("rank ", rank, " ", how, " on ", worker_id);
}

// "rank 2" or "ranks 2-3".
std::string RankRange(const Ranks& r) {
  if (r.local == 1) return absl::StrCat("rank ", r.first());
  return absl::StrCat("ranks ", r.first(), "-", r.first() + r.local - 1);
}

}  // namespace

v1::RunStatus FinalStatus(const AttemptEnd& e, const EventTranslator& t) {
  const int st = e.wait_status;
  v1::RunStatus s;
  s.set_run_id(e.run_id);
  s.set_attempt(e.attempt);
  s.set_step(t.step());
  const bool has_rank0 = e.ranks.node_rank == 0;
  // Rank 0 defines a clean end where it runs; elsewhere every rank exiting 0 does.
  const bool clean =
      has_rank0 ? Clean(st) && t.ended() : Clean(st) && e.others_clean && e.failed_rank < 0;
  auto failed = [&](std::string reason, const std::string& tail) {
    s.set_state(v1::RUN_STATE_FAILED);
    s.set_reason(std::move(reason));
    s.set_stderr_tail(tail);
  };
  if (e.shutting_down && !e.cancelled && !clean) {
    s.set_state(v1::RUN_STATE_LOST);
    s.set_reason(absl::StrCat(e.worker_id, " shut down; the run goes back to the queue"));
  } else if (e.cancelled) {
    s.set_state(v1::RUN_STATE_CANCELLED);
    s.set_reason(e.killed
                     ? absl::StrCat("cancelled (killed after ", e.cancel_grace_s, " s of SIGTERM)")
                     : "cancelled");
  } else if (const int first = e.failed_rank >= 0 ? e.failed_wait_status : st;
             e.ranks.nodes > 1 && !clean && WIFEXITED(first) &&
             WEXITSTATUS(first) == kExitLostPeer) {
    // A rank here lost the ranks of another node (that node or its worker died): not this run's
    // fault, so the run goes back to the queue, from its newest checkpoint, like a lost worker.
    const int rank = e.failed_rank >= 0 ? e.failed_rank : e.ranks.first();
    const std::string& tail = e.failed_rank >= 0 ? e.failed_stderr_tail : e.stderr_tail;
    s.set_state(v1::RUN_STATE_LOST);
    s.set_reason(absl::StrCat("rank ", rank, " lost contact with another node at step ",
                              t.step(), " on ", e.worker_id, " (", LastLine(tail),
                              "); the run goes back to the queue"));
    s.set_stderr_tail(tail);
  } else if (!has_rank0) {
    if (clean) {
      s.set_state(v1::RUN_STATE_SUCCEEDED);
      s.set_reason(absl::StrCat("node ", e.ranks.node_rank, " of ", e.ranks.nodes, ": ",
                                RankRange(e.ranks), " exited cleanly on ", e.worker_id));
    } else if (e.failed_rank >= 0) {
      failed(RankFailure(e.failed_rank, e.failed_wait_status, e.failed_stderr_tail, t.step(),
                         e.worker_id),
             e.failed_stderr_tail);
    } else {
      // Only a rank the worker signalled exits uncleanly without failing first; that is a cancel
      // or a shutdown, above. Kept for completeness.
      failed(RankFailure(e.ranks.first(), st, e.stderr_tail, t.step(), e.worker_id), e.stderr_tail);
    }
  } else if (Clean(st) && t.end_status() == events::kStatusPaused) {
    s.set_state(v1::RUN_STATE_PAUSED);
    s.set_summary_json(t.summary_json());
    s.set_reason(absl::StrCat("paused at step ", t.step(), " on ", e.worker_id));
  } else if (Clean(st) && t.end_status() == events::kStatusSucceeded) {
    s.set_state(v1::RUN_STATE_SUCCEEDED);
    s.set_summary_json(t.summary_json());
  } else if (e.failed_rank > 0 && t.error().empty()) {
    // Another rank failed first; rank 0 then failed because of it (or was stopped).
    failed(RankFailure(e.failed_rank, e.failed_wait_status, e.failed_stderr_tail, t.step(),
                       e.worker_id),
           e.failed_stderr_tail);
  } else {
    // The last line sgt-train printed says why, in its words ("sgt-train: token file ...").
    const std::string last = LastLine(e.stderr_tail);
    std::string reason;
    if (!t.error().empty()) {
      reason = absl::StrCat(t.error(), " at step ", t.step());
    } else if (Clean(st)) {
      reason = "sgt-train exited without reporting an end";
    } else if (!last.empty() && WIFEXITED(st)) {
      reason = last;
    } else {
      reason = absl::StrCat("sgt-train crashed at step ", t.step());
    }
    failed(absl::StrCat(reason, " (", Child::DescribeExit(st), " on ", e.worker_id, ")"),
           e.stderr_tail);
  }
  return s;
}

}  // namespace sgt::worker
