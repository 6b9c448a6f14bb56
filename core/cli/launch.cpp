// `daug launch --nproc N [--master-port P] [--timeout S] [--grace S] -- run cfg.toml [args...]`: N local ranks of this
// executable with torchrun's environment contract, supervised so that one failing rank ends the launch (no hang).
#include "launch.h"

#include "command.h"

#include <daug/error.h>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <iostream>

extern char** environ;

namespace daug::cli {
namespace {

constexpr const char* kUsage =
    "usage: daug launch --nproc N [--master-port P] [--timeout S] [--grace S] [--] <command> [<args>]\n"
    "       daug run --nproc N CONFIG [run options]   (the same: daug launch --nproc N -- run CONFIG ...)\n\n"
    "Starts N processes (ranks) of this daug on this machine, each with RANK, WORLD_SIZE, LOCAL_RANK,\n"
    "LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and MASTER_PORT set (the environment torchrun and srun give), and\n"
    "forwards SIGINT/SIGTERM/SIGHUP to them. Exits 0 only when every rank exits 0; when one fails it is named, the\n"
    "others get the grace period to end on their own, and are then terminated.\n\n"
    "  --nproc N        number of ranks (processes) to start, >= 1\n"
    "  --master-port P  rendezvous port on 127.0.0.1 (default: a free port)\n"
    "  --timeout S      seconds a rank waits for peers that do not join the rendezvous, or for a peer in a tensor\n"
    "                   collective, before it fails naming them (barriers wait for live peers; a dead one ends\n"
    "                   them within seconds) (sets DAUG_DIST_TIMEOUT_S; default: the ranks' own)\n"
    "  --grace S        seconds the other ranks get to exit after one failed, before they are terminated\n"
    "                   (default 30)\n";

void say(const std::string& msg) { std::cerr << "daug launch: " << msg << "\n" << std::flush; }

double parse_seconds(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno != 0 || !(d > 0) || d > 1e7)
    throw ConfigError(fmt::format("{} must be a number of seconds > 0, but got '{}'", opt, v));
  return d;
}

int parse_int(const std::string& opt, const std::string& v, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || end != v.c_str() + v.size() || errno != 0 || n < lo || n > hi)
    throw ConfigError(fmt::format("{} must be an integer in [{}, {}], but got '{}'", opt, lo, hi, v));
  return static_cast<int>(n);
}

/// A port nobody listens on now (the kernel picks it); rank 0's store binds it right after.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    throw Error(fmt::format("daug launch: cannot open a socket to find a free port: {}", std::strerror(errno)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(fmt::format("daug launch: cannot find a free port on 127.0.0.1: {}", std::strerror(e)));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw Error(fmt::format("daug launch: cannot read /proc/self/exe: {}", std::strerror(errno)));
  return std::string(buf, static_cast<size_t>(n));
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int s = WTERMSIG(status);
    return fmt::format("was killed by signal {} ({})", s, ::strsignal(s));
  }
  return fmt::format("ended with wait status {}", status);
}

struct Child {
  int rank = 0;
  pid_t pid = -1;
  bool running = true;
};

}  // namespace

LaunchOptions take_launch_options(std::vector<std::string>& args) {
  LaunchOptions o;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      rest.insert(rest.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    bool matched = false;
    for (const char* name : {"--nproc", "--master-port", "--timeout", "--grace"}) {
      const std::string n(name);
      std::string value;
      if (a == n) {
        if (i + 1 >= args.size()) throw ConfigError(fmt::format("{} needs a value", n));
        value = args[++i];
      } else if (a.rfind(n + "=", 0) == 0) {
        value = a.substr(n.size() + 1);
      } else {
        continue;
      }
      if (n == "--nproc") o.nproc = parse_int(n, value, 1, 4096);
      else if (n == "--master-port") o.master_port = parse_int(n, value, 1, 65535);
      else if (n == "--timeout") o.timeout_s = parse_seconds(n, value);
      else o.grace_s = parse_seconds(n, value);
      matched = o.given = true;
      break;
    }
    if (!matched) rest.push_back(a);
  }
  args = std::move(rest);
  return o;
}

int launch(const LaunchOptions& opts, const std::vector<std::string>& command) {
  if (opts.nproc < 1) throw ConfigError("daug launch: --nproc N (N >= 1 ranks) is required");
  if (command.empty())
    throw ConfigError(
        "daug launch: expected the command to run after the options, e.g. 'daug launch --nproc 2 -- run "
        "cfg.toml'");
  const std::string exe = self_exe();
  const int port = opts.master_port > 0 ? opts.master_port : free_port();

  std::vector<std::string> argv_s{exe};
  for (const auto& p : globals().plugin_paths) argv_s.insert(argv_s.end(), {"--plugin-path", p});
  if (!globals().log_level.empty()) argv_s.insert(argv_s.end(), {"--log-level", globals().log_level});
  argv_s.insert(argv_s.end(), command.begin(), command.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);

  // Each rank's environment is built before fork(): the child only calls execve (async-signal-safe).
  const std::vector<std::string> ours{"RANK",        "WORLD_SIZE",  "LOCAL_RANK",         "LOCAL_WORLD_SIZE",
                                      "MASTER_ADDR", "MASTER_PORT", "DAUG_DIST_TIMEOUT_S"};
  std::vector<std::string> base;
  for (char** e = environ; *e; ++e) {
    const std::string kv(*e);
    const std::string key = kv.substr(0, kv.find('='));
    if (std::find(ours.begin(), ours.end(), key) == ours.end()) base.push_back(kv);
  }
  base.push_back("MASTER_ADDR=127.0.0.1");
  base.push_back(fmt::format("MASTER_PORT={}", port));
  base.push_back(fmt::format("WORLD_SIZE={}", opts.nproc));
  base.push_back(fmt::format("LOCAL_WORLD_SIZE={}", opts.nproc));
  if (opts.timeout_s > 0) base.push_back(fmt::format("DAUG_DIST_TIMEOUT_S={}", opts.timeout_s));
  std::vector<std::vector<std::string>> envs_s(static_cast<size_t>(opts.nproc), base);
  std::vector<std::vector<char*>> envs(envs_s.size());
  for (size_t r = 0; r < envs_s.size(); ++r) {
    envs_s[r].push_back(fmt::format("RANK={}", r));
    envs_s[r].push_back(fmt::format("LOCAL_RANK={}", r));
    for (auto& s : envs_s[r]) envs[r].push_back(s.data());
    envs[r].push_back(nullptr);
  }

  say(fmt::format("starting {} rank(s) of {} (MASTER_ADDR=127.0.0.1 MASTER_PORT={}{})", opts.nproc, exe, port,
                  opts.timeout_s > 0 ? fmt::format(" DAUG_DIST_TIMEOUT_S={}", opts.timeout_s) : ""));

  // The signals this loop waits for are blocked and taken with sigtimedwait; children get the old mask back.
  sigset_t wait_set, old_set;
  sigemptyset(&wait_set);
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&wait_set, s);
  sigprocmask(SIG_BLOCK, &wait_set, &old_set);
  struct RestoreMask {
    sigset_t set;
    ~RestoreMask() { sigprocmask(SIG_SETMASK, &set, nullptr); }
  } restore{old_set};

  const pid_t parent = ::getpid();
  std::vector<Child> kids;
  auto signal_running = [&](int sig) {
    for (const auto& k : kids)
      if (k.running) ::kill(k.pid, sig);
  };
  for (int r = 0; r < opts.nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int e = errno;
      signal_running(SIGKILL);
      for (const auto& k : kids) ::waitpid(k.pid, nullptr, 0);
      throw Error(fmt::format("daug launch: cannot start rank {}: fork failed: {}", r, std::strerror(e)));
    }
    if (pid == 0) {
      sigprocmask(SIG_SETMASK, &old_set, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed launcher leaves no orphaned ranks behind
      if (::getppid() != parent) ::_exit(127);
      ::execve(argv[0], argv.data(), envs[static_cast<size_t>(r)].data());
      const char msg[] = "daug launch: execve of the daug executable failed\n";
      (void)!::write(2, msg, sizeof(msg) - 1);
      ::_exit(127);
    }
    kids.push_back({r, pid, true});
  }
  std::string started;
  for (const auto& k : kids) started += fmt::format("{}rank {} pid {}", started.empty() ? "" : ", ", k.rank, k.pid);
  say(started);

  using Clock = std::chrono::steady_clock;
  bool failed = false, terminating = false;
  int forwarded = 0, interrupts = 0;
  Clock::time_point deadline = Clock::time_point::max();
  auto running = [&] {
    int n = 0;
    for (const auto& k : kids) n += k.running;
    return n;
  };
  while (running() > 0) {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto it = std::find_if(kids.begin(), kids.end(), [&](const Child& k) { return k.pid == pid; });
      if (it == kids.end()) continue;
      it->running = false;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (ok) continue;
      say(fmt::format("rank {} (pid {}) {}", it->rank, pid, describe_status(status)));
      if (!failed && !forwarded) {
        if (running() > 0) {
          say(fmt::format("waiting up to {} s for the other rank(s) to exit", opts.grace_s));
          deadline =
              Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts.grace_s));
        }
      }
      failed = true;
    }
    if (running() == 0) break;
    if (Clock::now() >= deadline) {
      for (const auto& k : kids)
        if (k.running)
          say(fmt::format("rank {} (pid {}) is still running; {}", k.rank, k.pid,
                          terminating ? "killing it (SIGKILL)" : "terminating it (SIGTERM)"));
      signal_running(terminating ? SIGKILL : SIGTERM);
      deadline = terminating ? Clock::time_point::max() : Clock::now() + std::chrono::seconds(5);
      terminating = true;
    }
    // Wake at least every second (SIGCHLD may coalesce) and at the deadline.
    long long ns = 1000000000LL;
    if (deadline != Clock::time_point::max())
      ns = std::clamp<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now()).count(),
                                 1000000LL, ns);
    timespec ts{static_cast<time_t>(ns / 1000000000LL), static_cast<long>(ns % 1000000000LL)};
    siginfo_t info{};
    const int sig = ::sigtimedwait(&wait_set, &info, &ts);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
      ++interrupts;
      forwarded = sig;
      // A second interrupt means "now": the ranks did not end on the first one.
      say(fmt::format("got {}; {} the ranks", ::strsignal(sig),
                      interrupts > 1 ? "killing (SIGKILL)" : "forwarding it to"));
      signal_running(interrupts > 1 ? SIGKILL : sig);
    }
  }
  if (forwarded) return 128 + forwarded;
  if (failed) {
    say("failed (a rank did not exit 0; see above)");
    return 1;
  }
  return 0;
}

namespace {
int launch_cmd(const std::vector<std::string>& args_in) {
  std::vector<std::string> args = args_in;
  // Options before the command belong to the launcher; the command's own come after it (or after "--").
  std::vector<std::string> head, command;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      command.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    const bool takes_value = a == "--nproc" || a == "--master-port" || a == "--timeout" || a == "--grace";
    if (a.rfind("--", 0) != 0) {  // the command word
      command.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    head.push_back(a);
    if (takes_value && i + 1 < args.size()) head.push_back(args[++i]);
    else if (!takes_value && a.find('=') == std::string::npos)
      throw ConfigError(fmt::format("daug launch: unknown option '{}'\n\n{}", a, kUsage));
  }
  const LaunchOptions opts = take_launch_options(head);
  if (!head.empty()) throw ConfigError(fmt::format("daug launch: unknown option '{}'\n\n{}", head.front(), kUsage));
  if (opts.nproc < 1 || command.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  return launch(opts, command);
}
}  // namespace
DAUG_CLI_COMMAND("launch", "run a command (run CONFIG ...) on N local ranks with the distributed environment",
                 launch_cmd);

}  // namespace daug::cli
