// sgtctl's command line: flags, target ids, run states, exit codes.
#include "cli/args.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "cli/format.h"

namespace sgt::cli {

int ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitUsage;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return kExitState;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitAuth;
    default:
      return kExitCoordinator;
  }
}

std::string DescribeRpcError(const grpc::Status& status, absl::string_view address, bool token_sent,
                             double deadline_s) {
  const std::string& message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::StrCat("cannot reach the coordinator at ", address, " (", message,
                          "); start sgt-coordinator or pass --coordinator / SGT_COORDINATOR");
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StrCat("the coordinator at ", address, " did not answer within ", deadline_s,
                          "s (", message,
                          "); check that it is running and not overloaded, or raise --timeout");
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::StrCat(message.empty() ? "unauthenticated" : message,
                          token_sent ? "; the token sent was refused: check --token-file / "
                                       "SGT_TOKEN_FILE against the coordinator's client token"
                                     : "; no token was sent: pass the coordinator's client token "
                                       "with --token-file FILE or SGT_TOKEN_FILE");
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::StrCat(message.empty() ? "permission denied" : message,
                          "; this token may not do that: use the client token, not a worker's");
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return message;
    case grpc::StatusCode::CANCELLED:
      return absl::StrCat("the call was cancelled (", message, ")");
    default:
      return absl::StrCat("the coordinator at ", address, " failed (code ",
                          static_cast<int>(status.error_code()), "): ", message);
  }
}

std::string ParsedArgs::Get(const std::string& name, const std::string& fallback) const {
  auto it = flags.find(name);
  if (it == flags.end() || it->second.empty()) return fallback;
  return it->second.back();
}

std::vector<std::string> ParsedArgs::All(const std::string& name) const {
  auto it = flags.find(name);
  return it == flags.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs, bool stop_at_positional) {
  ParsedArgs out;
  auto find = [&](absl::string_view name, bool is_short) -> const FlagSpec* {
    for (const FlagSpec& spec : specs) {
      if (is_short ? (name.size() == 1 && spec.short_name == name[0]) : spec.name == name) {
        return &spec;
      }
    }
    return nullptr;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      out.positional.insert(out.positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    // "-" alone (stdin/stdout by convention) and negative numbers are positional.
    bool is_long = arg.size() > 2 && arg.compare(0, 2, "--") == 0;
    bool is_short = !is_long && arg.size() == 2 && arg[0] == '-' && arg[1] != '-' &&
                    !absl::ascii_isdigit(static_cast<unsigned char>(arg[1]));
    if (!is_long && !is_short) {
      if (stop_at_positional) {
        out.positional.insert(out.positional.end(), args.begin() + i, args.end());
        break;
      }
      out.positional.push_back(arg);
      continue;
    }
    absl::string_view body = absl::string_view(arg).substr(is_long ? 2 : 1);
    absl::string_view name = body;
    bool has_inline_value = false;
    std::string value;
    if (size_t eq = body.find('='); is_long && eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = std::string(body.substr(eq + 1));
      has_inline_value = true;
    }
    const FlagSpec* spec = find(name, is_short);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option '", arg, "'"));
    }
    if (spec->takes_value) {
      if (!has_inline_value) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("option '", arg, "' needs a value: ", arg, " VALUE"));
        }
        value = args[++i];
      }
    } else if (has_inline_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("option '--", spec->name, "' takes no value; write just --", spec->name));
    }
    std::vector<std::string>& values = out.flags[spec->name];
    if (!values.empty() && !spec->repeated) {
      return absl::InvalidArgumentError(
          absl::StrCat("option '--", spec->name, "' given twice; give it once"));
    }
    values.push_back(value);
  }
  return out;
}

namespace {

// "r12" for prefix 'r': the prefix, then a positive decimal number (ids start at 1).
bool IsIdOf(absl::string_view arg, char prefix) {
  if (arg.size() < 2 || arg[0] != prefix) return false;
  bool nonzero = false;
  for (size_t i = 1; i < arg.size(); ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(arg[i]))) return false;
    nonzero = nonzero || arg[i] != '0';
  }
  return nonzero;
}

}  // namespace

absl::StatusOr<TargetKind> ParseTarget(absl::string_view arg, bool runs_ok, bool sweeps_ok) {
  bool is_run = IsIdOf(arg, 'r');
  bool is_sweep = IsIdOf(arg, 's');
  if ((is_run && runs_ok) || (is_sweep && sweeps_ok)) {
    return is_run ? TargetKind::kRun : TargetKind::kSweep;
  }
  std::string expected;
  if (runs_ok && sweeps_ok) {
    expected = "a run id r<N> (e.g. r12) or a sweep id s<N> (e.g. s3)";
  } else if (runs_ok) {
    expected = "a run id r<N> (e.g. r12)";
  } else {
    expected = "a sweep id s<N> (e.g. s3)";
  }
  std::string got = is_run ? " (a run id)" : is_sweep ? " (a sweep id)" : "";
  return absl::InvalidArgumentError(
      absl::StrCat("'", arg, "'", got, " is not ", expected, "; `sgtctl ls` lists the ids"));
}

absl::StatusOr<v1::RunState> ParseRunState(absl::string_view name) {
  absl::string_view wanted_view = absl::StripAsciiWhitespace(name);
  std::string wanted = absl::AsciiStrToLower(wanted_view);
  if (absl::StartsWith(wanted, "run_state_")) wanted = wanted.substr(10);
  std::vector<std::string> valid;
  for (int i = v1::RunState_MIN; i <= v1::RunState_MAX; ++i) {
    if (!v1::RunState_IsValid(i) || i == v1::RUN_STATE_UNSPECIFIED) continue;
    auto state = static_cast<v1::RunState>(i);
    std::string state_name = RunStateName(state);
    if (state_name == wanted) return state;
    valid.push_back(state_name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown run state '", name, "'; use one of: ", absl::StrJoin(valid, ", ")));
}

absl::StatusOr<int64_t> ParseInteger(absl::string_view value, absl::string_view flag, int64_t min,
                                     int64_t max) {
  int64_t parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed) || parsed < min || parsed > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " '", value, "' is not an integer in [", min, ", ", max, "]"));
  }
  return parsed;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseSetting(absl::string_view text) {
  size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set '", text, "' is not key=value; write e.g. --set growth.k_max=2"));
  }
  return std::make_pair(std::string(absl::StripAsciiWhitespace(text.substr(0, eq))),
                        std::string(absl::StripAsciiWhitespace(text.substr(eq + 1))));
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  return text.str();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("token file: ", text.status().message(),
                                                   "; fix --token-file or SGT_TOKEN_FILE"));
  }
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token file ", path, " is empty; it should hold the coordinator's client token"));
  }
  // gRPC metadata values must be printable ASCII; a stray newline would fail every call.
  for (char c : token) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token file ", path,
          " holds a non-printable character inside the token; it should hold one line"));
    }
  }
  return token;
}

}  // namespace sgt::cli
