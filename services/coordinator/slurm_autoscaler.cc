// The Slurm autoscaler's rounds: squeue, the decision, sbatch and scancel (slurm_autoscaler.h).
#include "services/coordinator/slurm_autoscaler.h"

#include <chrono>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/log.h"
#include "services/common/process.h"

namespace sgt::coord {

namespace {

constexpr char kLog[] = "slurm";

// The job states the sgt_slurm_jobs gauge has a series for, from the start; others are "other".
constexpr const char* kGaugeStates[] = {"pending", "configuring", "running", "completing", "other"};

std::string GaugeState(const std::string& squeue_state) {
  std::string s = absl::AsciiStrToLower(squeue_state);
  if (s == "submitted") return "pending";  // submitted, not yet listed
  for (const char* known : kGaugeStates) {
    if (s == known) return s;
  }
  return "other";
}

}  // namespace

SlurmAutoscaler::SlurmAutoscaler(AutoscaleConfig config, SlurmCommands commands,
                                 Coordinator* coordinator, coord::Store* store,
                                 prometheus::Registry* registry, std::function<double()> clock)
    : config_(std::move(config)),
      commands_(std::move(commands)),
      coordinator_(coordinator),
      store_(store),
      clock_(std::move(clock)) {
  if (!clock_) {
    clock_ = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  if (registry == nullptr) return;
  m_.jobs = &prometheus::BuildGauge()
                 .Name("sgt_slurm_jobs")
                 .Help("Worker jobs of the Slurm autoscaler that Slurm lists, by state.")
                 .Register(*registry);
  for (const char* s : kGaugeStates) m_.jobs->Add({{"state", s}});
  auto& runs = prometheus::BuildGauge()
                   .Name("sgt_slurm_waiting_runs")
                   .Help(
                       "Queued runs that neither the connected workers nor the worker jobs "
                       "coming hold (unserved), and those no worker job could (too_big).")
                   .Register(*registry);
  m_.unserved = &runs.Add({{"reason", "unserved"}});
  m_.too_big = &runs.Add({{"reason", "too_big"}});
  auto& jobs = prometheus::BuildCounter()
                   .Name("sgt_slurm_job_submissions_total")
                   .Help("sbatch calls of the Slurm autoscaler, by result (ok, failed).")
                   .Register(*registry);
  m_.submitted = &jobs.Add({{"result", "ok"}});
  m_.submit_failures = &jobs.Add({{"result", "failed"}});
  m_.cancelled = &prometheus::BuildCounter()
                      .Name("sgt_slurm_job_cancels_total")
                      .Help("Pending worker jobs the Slurm autoscaler cancelled as surplus.")
                      .Register(*registry)
                      .Add({});
  m_.failures = &prometheus::BuildCounter()
                     .Name("sgt_slurm_command_failures_total")
                     .Help("squeue and scancel calls that failed or timed out, by command.")
                     .Register(*registry);
  for (const char* c : {"squeue", "scancel"}) m_.failures->Add({{"command", c}});
}

absl::Status SlurmAutoscaler::Load() {
  absl::StatusOr<std::vector<SlurmJob>> jobs = store_->LoadSlurmJobs();
  if (!jobs.ok()) return jobs.status();
  for (SlurmJob& j : *jobs) jobs_[j.id] = std::move(j);
  std::vector<std::string> known;
  for (const auto& [id, j] : jobs_) known.push_back(absl::StrCat(id, " ", j.state));
  log::Info(kLog, "autoscaler on: at most ", config_.max_jobs, " worker job(s) alive; ",
            jobs_.size(), " from the store",
            known.empty() ? "" : absl::StrCat(": ", absl::StrJoin(known, ", ")));
  return absl::OkStatus();
}

void SlurmAutoscaler::Remember(const SlurmJob& job) {
  if (absl::Status s = store_->UpsertSlurmJob(job); !s.ok()) {
    log::Error(kLog, "job ", job.id, ": ", s.message());  // kept in memory; stored next round
  }
}

void SlurmAutoscaler::Forget(const std::string& id) {
  if (absl::Status s = store_->DeleteSlurmJob(id); !s.ok()) {
    log::Error(kLog, "job ", id, ": ", s.message());
  }
}

bool SlurmAutoscaler::Refresh(double now) {
  std::vector<std::string> argv = {commands_.squeue};
  for (std::string& a : SqueueArgv(config_.job_name, commands_.user)) argv.push_back(std::move(a));
  absl::StatusOr<ProcessResult> r = RunProcess(argv, commands_.timeout_s);
  std::string problem;
  absl::StatusOr<std::vector<SlurmJob>> listed;
  if (!r.ok()) {
    problem = std::string(r.status().message());
  } else if (!r->Succeeded()) {
    problem = absl::StrCat(commands_.squeue, " ", r->Describe(commands_.timeout_s));
  } else if (listed = ParseSqueueOutput(r->out); !listed.ok()) {
    problem = std::string(listed.status().message());
  }
  if (!problem.empty()) {
    if (m_.failures != nullptr) m_.failures->Add({{"command", "squeue"}}).Increment();
    if (problem != last_problem_) {
      log::Warn(kLog,
                "cannot list the worker jobs, so none is submitted or cancelled until it "
                "can: ",
                problem);
    }
    last_problem_ = problem;
    return false;
  }
  if (!last_problem_.empty()) log::Info(kLog, "squeue answers again");
  last_problem_.clear();
  std::set<std::string> seen;
  for (const SlurmJob& l : *listed) {
    seen.insert(l.id);
    auto it = jobs_.find(l.id);
    if (it == jobs_.end()) {
      // A job of ours that the store does not know: its record was lost (a crash between sbatch
      // and the write), or another coordinator uses the same --slurm-job-name.
      log::Warn(kLog, "job ", l.id, " named ", config_.job_name,
                " was not in the store; counted as one of ours");
      SlurmJob j = l;
      j.submitted_at = now;
      it = jobs_.emplace(l.id, std::move(j)).first;
      it->second.state.clear();  // stored below
    }
    SlurmJob& j = it->second;
    const bool running_now = l.state == "RUNNING" && j.running_since <= 0;
    if (j.state == l.state && !running_now) continue;
    if (j.state != l.state && !j.state.empty()) {
      log::Info(kLog, "job ", j.id, ": ", j.state, " -> ", l.state);
    }
    j.state = l.state;
    if (running_now) j.running_since = now;
    Remember(j);
  }
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (seen.count(it->first)) {
      ++it;
      continue;
    }
    log::Info(kLog, "job ", it->first, " ended (squeue no longer lists it)");
    Forget(it->first);
    it = jobs_.erase(it);
  }
  return true;
}

void SlurmAutoscaler::Submit(int count, double now) {
  std::vector<std::string> argv = {commands_.sbatch};
  for (std::string& a : SbatchArgv(config_)) argv.push_back(std::move(a));
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<ProcessResult> r = RunProcess(argv, commands_.timeout_s);
    absl::StatusOr<std::string> id = absl::InternalError("");
    if (!r.ok()) {
      id = r.status();
    } else if (!r->Succeeded()) {
      id = absl::UnavailableError(
          absl::StrCat(commands_.sbatch, " ", r->Describe(commands_.timeout_s)));
    } else {
      id = ParseSbatchOutput(r->out);
    }
    if (!id.ok()) {
      if (m_.submit_failures != nullptr) m_.submit_failures->Increment();
      log::Warn(kLog,
                "cannot submit a worker job (tried again next round): ", id.status().message());
      return;
    }
    if (m_.submitted != nullptr) m_.submitted->Increment();
    SlurmJob j;
    j.id = *id;
    j.state = "SUBMITTED";
    j.submitted_at = now;
    jobs_[j.id] = j;
    Remember(j);
    log::Info(kLog, "submitted worker job ", j.id, " (", jobs_.size(), " of ", config_.max_jobs,
              " alive)");
  }
}

void SlurmAutoscaler::Cancel(const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    absl::StatusOr<ProcessResult> r = RunProcess({commands_.scancel, id}, commands_.timeout_s);
    if (!r.ok() || !r->Succeeded()) {
      if (m_.failures != nullptr) m_.failures->Add({{"command", "scancel"}}).Increment();
      log::Warn(kLog, "cannot cancel job ", id, ": ",
                r.ok() ? absl::StrCat(commands_.scancel, " ", r->Describe(commands_.timeout_s))
                       : std::string(r.status().message()));
      continue;
    }
    if (m_.cancelled != nullptr) m_.cancelled->Increment();
    // It stays counted until squeue stops listing it.
    log::Info(kLog, "cancelled pending job ", id);
  }
}

void SlurmAutoscaler::Observe(const ScaleDecision& d) {
  if (m_.jobs == nullptr) return;
  std::map<std::string, int> by_state;
  for (const char* s : kGaugeStates) by_state[s] = 0;
  for (const auto& [id, j] : jobs_) by_state[GaugeState(j.state)] += 1;
  for (const auto& [state, n] : by_state) m_.jobs->Add({{"state", state}}).Set(n);
  m_.unserved->Set(d.unserved);
  m_.too_big->Set(d.too_big);
}

void SlurmAutoscaler::Round() {
  const double now = clock_();
  if (!Refresh(now)) return;
  const ScaleDemand demand = coordinator_->ScalingDemand(config_.kind());
  std::vector<SlurmJob> jobs;
  for (const auto& [id, j] : jobs_) jobs.push_back(j);
  const ScaleDecision d = DecideScaling(demand, jobs, config_, now);
  if (!d.why.empty() && (d.why != last_why_ || d.submit > 0 || !d.cancel.empty())) {
    log::Info(kLog, d.why);
  }
  last_why_ = d.why;
  Submit(d.submit, now);
  Cancel(d.cancel);
  Observe(d);
}

}  // namespace sgt::coord
