// The Slurm autoscaler's decisions and the command lines it runs (autoscaler.h): pure logic.
#include "services/coordinator/autoscaler.h"

#include <algorithm>
#include <cstddef>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sgt::coord {

namespace {

// Where a node of the pool comes from, in the order runs are placed on them.
enum Tier { kConnected = 0, kComing = 1, kFresh = 2 };

// A worker, connected, still coming or to be submitted for, as far as placing runs goes.
struct Node {
  int32_t free = 0;
  Tier tier = kConnected;
  size_t job = 0;  // kComing: the index of its job among the coming ones
  bool used = false;
};

std::string Plural(int64_t n, const char* one, const char* many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

}  // namespace

bool SlurmJobStarting(const std::string& state) {
  return state == "PENDING" || state == "CONFIGURING" || state == "REQUEUED" ||
         state == "REQUEUE_HOLD" || state == "REQUEUE_FED" || state == "SUBMITTED";
}

ScaleDecision DecideScaling(const ScaleDemand& demand, const std::vector<SlurmJob>& jobs,
                            const AutoscaleConfig& config, double now) {
  ScaleDecision d;
  d.alive = static_cast<int32_t>(jobs.size());
  const int32_t per_node = config.devices_per_node();
  const int32_t per_job = std::max(1, config.nodes_per_job);
  const int32_t most_nodes = std::max(0, config.max_jobs) * per_job;

  // The pool: the connected workers' free devices, then the workers of the jobs still coming
  // (running ones within start_s first, then the others, oldest first).
  std::vector<Node> pool;
  for (const ConnectedWorker& w : demand.workers) pool.push_back({w.free, kConnected, 0});
  std::vector<const SlurmJob*> coming;
  for (const SlurmJob& j : jobs) {
    const bool running_young =
        j.state == "RUNNING" && (j.running_since <= 0 || now - j.running_since < config.start_s);
    if (SlurmJobStarting(j.state) || running_young) coming.push_back(&j);
  }
  std::stable_sort(coming.begin(), coming.end(), [](const SlurmJob* a, const SlurmJob* b) {
    const bool ar = a->state == "RUNNING", br = b->state == "RUNNING";
    return ar != br ? ar : a->submitted_at < b->submitted_at;
  });
  // A running job's workers that connected already are not coming any more.
  std::vector<double> since;
  for (const ConnectedWorker& w : demand.workers) since.push_back(w.since);
  std::sort(since.begin(), since.end());
  std::vector<bool> claimed(since.size(), false);
  for (size_t j = 0; j < coming.size(); ++j) {
    int32_t still = per_job;
    for (size_t i = 0; i < since.size() && coming[j]->state == "RUNNING" && still > 0; ++i) {
      if (claimed[i] || since[i] < coming[j]->submitted_at) continue;
      claimed[i] = true;
      --still;
    }
    for (int32_t k = 0; k < still; ++k) pool.push_back({per_node, kComing, j});
  }

  // Each run, biggest first (first fit decreasing packs well), on `nodes` distinct nodes with
  // room: connected ones first (best fit: the fewest free that suffice), then coming ones (the
  // oldest job first), then new ones, added as needed.
  std::vector<WaitingRun> runs = demand.waiting;
  std::stable_sort(runs.begin(), runs.end(), [](const WaitingRun& a, const WaitingRun& b) {
    return a.devices != b.devices ? a.devices > b.devices : a.nodes > b.nodes;
  });
  int32_t fresh = 0;
  for (const WaitingRun& r : runs) {
    std::vector<size_t> fit;
    for (size_t i = 0; i < pool.size(); ++i) {
      if (pool[i].free >= r.devices) fit.push_back(i);
    }
    std::stable_sort(fit.begin(), fit.end(), [&](size_t a, size_t b) {
      const Node &na = pool[a], &nb = pool[b];
      if (na.tier != nb.tier) return na.tier < nb.tier;
      if (na.tier == kComing && na.job != nb.job) return na.job < nb.job;
      return na.free < nb.free;
    });
    const int32_t have = static_cast<int32_t>(fit.size());
    const int32_t short_by = std::max(0, r.nodes - have);
    if (short_by > 0 && (r.devices > per_node || short_by > most_nodes)) {
      ++d.too_big;
      continue;
    }
    bool new_nodes = short_by > 0;
    for (int32_t k = 0; k < std::min(have, r.nodes); ++k) {
      Node& n = pool[fit[static_cast<size_t>(k)]];
      n.free -= r.devices;
      n.used = true;
      new_nodes = new_nodes || n.tier == kFresh;
    }
    for (int32_t k = 0; k < short_by; ++k) pool.push_back({per_node - r.devices, kFresh, 0, true});
    fresh += short_by;
    if (new_nodes) ++d.unserved;
  }

  const int32_t need_jobs = (fresh + per_job - 1) / per_job;
  d.submit = std::clamp(need_jobs, 0, std::max(0, config.max_jobs - d.alive));
  if (need_jobs > 0) {
    d.why = absl::StrCat(Plural(d.unserved, "queued run needs", "queued runs need"), " ",
                         Plural(fresh, "more node", "more nodes"), " (",
                         Plural(need_jobs, "job", "jobs"), "): ");
    if (d.submit > 0) {
      absl::StrAppend(&d.why, "submitting ", d.submit, " (", d.alive, " of ", config.max_jobs,
                      " alive)");
    } else {
      absl::StrAppend(&d.why, "none submitted: ", d.alive, " of ", config.max_jobs,
                      " jobs alive (--slurm-max-jobs)");
    }
    if (d.submit > 0 && d.submit < need_jobs) {
      absl::StrAppend(&d.why, "; the rest wait for --slurm-max-jobs");
    }
    return d;  // nothing is cancelled while jobs are wanted
  }

  // Pending jobs no run was placed on are surplus, newest first.
  std::vector<bool> needed(coming.size(), false);
  for (const Node& n : pool) {
    if (n.tier == kComing && n.used) needed[n.job] = true;
  }
  std::vector<const SlurmJob*> surplus;
  for (size_t j = 0; j < coming.size(); ++j) {
    if (!needed[j] && coming[j]->state == "PENDING") surplus.push_back(coming[j]);
  }
  std::stable_sort(surplus.begin(), surplus.end(), [](const SlurmJob* a, const SlurmJob* b) {
    return a->submitted_at > b->submitted_at;
  });
  for (const SlurmJob* j : surplus) d.cancel.push_back(j->id);
  if (!d.cancel.empty()) {
    d.why = absl::StrCat(
        demand.waiting.empty() ? "no run is queued"
                               : "the queued runs fit on the connected and coming workers",
        ": cancelling ",
        Plural(static_cast<int64_t>(d.cancel.size()), "pending job", "pending jobs"), " (",
        absl::StrJoin(d.cancel, ", "), ")");
  }
  return d;
}

std::vector<std::string> SbatchArgv(const AutoscaleConfig& c) {
  std::vector<std::string> a = {"--parsable", "--job-name=" + c.job_name};
  if (!c.partition.empty()) a.push_back("--partition=" + c.partition);
  if (!c.account.empty()) a.push_back("--account=" + c.account);
  if (!c.time_limit.empty()) a.push_back("--time=" + c.time_limit);
  a.push_back(absl::StrCat("--nodes=", c.nodes_per_job));
  a.push_back("--ntasks-per-node=1");
  if (c.gpus_per_node > 0) {
    a.push_back(absl::StrCat("--gres=gpu:", c.gpus_per_node));
  } else {
    a.push_back(absl::StrCat("--cpus-per-task=", c.cpu_slots_per_node));
  }
  a.insert(a.end(), c.sbatch_args.begin(), c.sbatch_args.end());
  a.push_back(c.script);
  if (c.gpus_per_node == 0) a.push_back(absl::StrCat("SGT_DEVICES=cpu:", c.cpu_slots_per_node));
  a.insert(a.end(), c.script_args.begin(), c.script_args.end());
  return a;
}

absl::StatusOr<std::string> ParseSbatchOutput(const std::string& out) {
  std::string line(absl::StripAsciiWhitespace(out));
  if (const size_t nl = line.rfind('\n'); nl != std::string::npos) line = line.substr(nl + 1);
  const std::string id = line.substr(0, line.find(';'));
  if (id.empty() || !std::all_of(id.begin(), id.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sbatch --parsable printed no job id: \"", absl::CEscape(out), "\""));
  }
  return id;
}

std::vector<std::string> SqueueArgv(const std::string& job_name, const std::string& user) {
  return {"--noheader", "--name=" + job_name, "--user=" + user, "--format=%i %T"};
}

absl::StatusOr<std::vector<SlurmJob>> ParseSqueueOutput(const std::string& out) {
  std::vector<SlurmJob> jobs;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    const bool id_ok = f.size() == 2 && std::all_of(f[0].begin(), f[0].end(), [](char c) {
                         return absl::ascii_isdigit(c) || c == '_';
                       });
    if (!id_ok || f[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("squeue printed \"", absl::CEscape(absl::StripAsciiWhitespace(line)),
                       "\" where \"JOBID STATE\" was asked for (--format=\"%i %T\")"));
    }
    SlurmJob j;
    j.id = std::string(f[0]);
    j.state = std::string(f[1]);
    jobs.push_back(std::move(j));
  }
  return jobs;
}

}  // namespace sgt::coord
