// The rules of an attempt as pure functions: run ids, device picking, the child's launch, the
// final status (attempt_rules.h).
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

AttemptLaunch PlanLaunch(const v1::StartRun& s, const AttemptOptions& o,
                         const std::vector<std::string>& devices, const std::string& resume) {
  const std::string tag = absl::StrCat("attempt-", s.attempt());
  const fs::path dir = fs::path(o.work_dir) / "runs" / s.run_id() / tag;
  const fs::path ckdir = fs::path(o.checkpoint_root) / s.run_id() / tag;
  AttemptLaunch l;
  l.dir = dir.string();
  l.checkpoint_dir = ckdir.string();
  l.config_path = (dir / "config.json").string();
  ChildSpec& spec = l.child;
  spec.argv = {o.train_program,    "--config",       l.config_path, "--out",       l.dir,
               "--checkpoint-dir", l.checkpoint_dir, "--events-fd", "{events_fd}", "--no-progress"};
  if (!resume.empty()) spec.argv.insert(spec.argv.end(), {"--resume", resume});
  if (sgt::BriefOfConfigJson(s.config_json()).device == "cpu") {
    spec.argv.insert(spec.argv.end(),
                     {"--set", absl::StrCat("train.threads=", std::max(1, s.devices()))});
  } else {
    std::vector<std::string> idx;
    for (const std::string& d : devices) idx.push_back(d.substr(d.find(':') + 1));
    spec.env.push_back(absl::StrCat("CUDA_VISIBLE_DEVICES=", absl::StrJoin(idx, ",")));
  }
  spec.stdout_path = (dir / "stdout.log").string();
  spec.stderr_path = (dir / "stderr.log").string();
  return l;
}

v1::RunStatus FinalStatus(const AttemptEnd& e, const EventTranslator& t) {
  const int st = e.wait_status;
  v1::RunStatus s;
  s.set_run_id(e.run_id);
  s.set_attempt(e.attempt);
  s.set_step(t.step());
  const bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (e.shutting_down && !e.cancelled && !(clean && t.ended())) {
    s.set_state(v1::RUN_STATE_LOST);
    s.set_reason(absl::StrCat(e.worker_id, " shut down; the run goes back to the queue"));
  } else if (e.cancelled) {
    s.set_state(v1::RUN_STATE_CANCELLED);
    s.set_reason(e.killed
                     ? absl::StrCat("cancelled (killed after ", e.cancel_grace_s, " s of SIGTERM)")
                     : "cancelled");
  } else if (clean && t.end_status() == events::kStatusPaused) {
    s.set_state(v1::RUN_STATE_PAUSED);
    s.set_summary_json(t.summary_json());
    s.set_reason(absl::StrCat("paused at step ", t.step(), " on ", e.worker_id));
  } else if (clean && t.end_status() == events::kStatusSucceeded) {
    s.set_state(v1::RUN_STATE_SUCCEEDED);
    s.set_summary_json(t.summary_json());
  } else {
    s.set_state(v1::RUN_STATE_FAILED);
    // The last line sgt-train printed says why, in its words ("sgt-train: token file ...").
    std::string last;
    for (absl::string_view line : absl::StrSplit(e.stderr_tail, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty()) last = std::string(line);
    }
    std::string reason;
    if (!t.error().empty()) {
      reason = absl::StrCat(t.error(), " at step ", t.step());
    } else if (clean) {
      reason = "sgt-train exited without reporting an end";
    } else if (!last.empty() && WIFEXITED(st)) {
      reason = std::string(absl::StripPrefix(last, "sgt-train: "));
    } else {
      reason = absl::StrCat("sgt-train crashed at step ", t.step());
    }
    s.set_reason(absl::StrCat(reason, " (", Child::DescribeExit(st), " on ", e.worker_id, ")"));
    s.set_stderr_tail(e.stderr_tail);
  }
  return s;
}

}  // namespace sgt::worker
