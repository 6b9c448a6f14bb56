// `daug run`: run directory, stage building (all config errors surface before compute), cached stage outputs.
#include <daug/checkpoint.h>
#include <daug/communicator.h>
#include <daug/core/config_loader.h>
#include <daug/core/distributed.h>
#include <daug/core/experiment.h>
#include <daug/core/pipeline.h>
#include <daug/detail/log_console.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/options.h>
#include <daug/seed.h>
#include <daug/stage.h>

#include <ATen/Parallel.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <set>
#include <thread>

namespace daug::core {
namespace {

struct RunTable {
  std::string name = "run";
  std::string device = "cpu";
  int64_t seed = 0;
  int64_t threads = 0;
  std::vector<std::string> stages;
  std::string runs_dir = "runs";
  std::string cache_dir = "cache";
  std::string description;
  std::string precision = "fp32";
  bool allow_emulated_bf16 = false;
  bool tf32 = true;
  bool cudnn_benchmark = true;
  bool deterministic = false;
  std::string backend = "auto";
  double dist_timeout_s = 600.0;

  void visit(OptionVisitor& v) {
    v("name", name, "run name (part of the run directory name)", Check::required_non_empty());
    v("device", device, "\"cpu\", \"cuda\" or \"cuda:N\"");
    v("seed", seed, "global seed", Check::at_least(0));
    v("threads", threads, "LibTorch intra-op threads (0 = LibTorch's default)", Check::at_least(0));
    v("stages", stages, "config tables of the stages to run, in order");
    v("runs_dir", runs_dir, "directory that receives one sub-directory per run");
    v("cache_dir", cache_dir, "directory of content-addressed stage outputs");
    v("description", description, "free text, copied into the run directory");
    v("precision", precision,
      "numeric precision of the stages that train or sample models (fp32 | bf16 | fp16; a stage's own `precision` "
      "overrides it): bf16/fp16 run the forward passes under autocast with float32 master weights; fp16 is CUDA "
      "only, bf16 on the CPU needs bf16 instructions (avx512_bf16/amx_bf16)",
      Check::choice({"fp32", "bf16", "fp16"}));
    v("allow_emulated_bf16", allow_emulated_bf16,
      "allow bf16 on a CPU without bf16 instructions (LibTorch emulates it: correct but slower than fp32; tests)");
    v("tf32", tf32, "CUDA: TF32 tensor cores for float32 matmuls and convolutions (no effect on the CPU)");
    v("cudnn_benchmark", cudnn_benchmark, "CUDA: cuDNN autotuning of convolution algorithms (no effect on the CPU)");
    v("deterministic", deterministic,
      "CUDA: deterministic algorithms only (and no cuDNN autotuning); with tf32 = false this makes CUDA runs "
      "bitwise reproducible, as resume = bit-identical needs (no effect on the CPU, which is deterministic)");
    v("backend", backend,
      "distributed launches (daug launch, torchrun, srun): the c10d process group; auto = nccl for CUDA devices "
      "when this build has NCCL, else gloo",
      Check::choice({"auto", "gloo", "nccl"}).for_runtime());
    v("dist_timeout_s", dist_timeout_s,
      "distributed launches: seconds a rank waits for peers that do not join the rendezvous, or for a peer in a "
      "tensor collective, before it fails naming them (barriers wait for live peers, and a dead one ends them "
      "within seconds); the environment variable DAUG_DIST_TIMEOUT_S overrides it",
      Check::greater_than(0).for_runtime());
  }
};

std::string run_dir_stem(const std::string& name) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  return fmt::format("{:%Y%m%d-%H%M%S}_{}", tm, name);
}

/// Creates <root>/<stem>, or <stem>_1, _2, ... when another run took the name.
std::filesystem::path make_run_dir(const std::filesystem::path& root, const std::string& stem) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) throw DataError(fmt::format("cannot create the runs directory {}: {}", root.string(), ec.message()));
  for (int i = 0;; ++i) {
    auto dir = root / (i == 0 ? stem : fmt::format("{}_{}", stem, i));
    if (std::filesystem::create_directory(dir, ec)) return dir;
    if (ec) throw DataError(fmt::format("cannot create run directory {}: {}", dir.string(), ec.message()));
  }
}

/// An exclusive flock on a stage directory's lock file while the stage runs. A second `daug run` of the same
/// stage (same cache key: same directory) waits for the first, then finds `.complete` and reuses the output instead
/// of computing everything again beside it. The kernel releases the lock when its holder exits, even after kill -9:
/// a lock file left behind never blocks anyone.
class StageLock {
 public:
  /// With `wait` false it returns at once when another process holds the lock (then locked() is false).
  StageLock(const std::filesystem::path& file, const std::string& table, bool wait = true) {
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw DataError(fmt::format("cannot open the stage lock file {}: {}", file.string(), std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    if (errno != EWOULDBLOCK) fail(file);
    locked_ = false;
    if (!wait) return;
    locked_ = true;
    log::info("stage [{}]: another daug process is running this stage (lock {}); waiting for it to finish", table,
              file.string());
    waited_ = true;
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR) fail(file);
  }
  ~StageLock() { ::close(fd_); }  // releases the lock
  StageLock(const StageLock&) = delete;
  StageLock& operator=(const StageLock&) = delete;
  bool waited() const { return waited_; }
  bool locked() const { return locked_; }

 private:
  [[noreturn]] void fail(const std::filesystem::path& file) {
    const int e = errno;
    ::close(fd_);
    throw DataError(fmt::format("cannot lock the stage lock file {}: {}", file.string(), std::strerror(e)));
  }
  int fd_ = -1;
  bool waited_ = false;
  bool locked_ = true;
};

/// Cache keys and output directories of stages. A stage's key covers what it actually consumes: its plugin
/// (name and build id of the library), its effective options (defaults included, after validation), the run seed,
/// the fingerprint of external inputs, and recursively the keys of every component and upstream stage it asked
/// for in create() — for a component requested with Use::model only its model options (sampling options of a
/// Generator do not retrain it).
class StageRunner {
 public:
  StageRunner(Experiment& exp, const RunTable& run, const std::filesystem::path& cache_root)
      : exp_(exp), run_(run), cache_root_(cache_root) {}

  std::shared_ptr<Stage> stage(const std::string& table) {
    return std::static_pointer_cast<Stage>(exp_.build(table, Stage::kInterface));
  }

  bool is_stage(const std::string& table) const {
    const auto* n = exp_.node(table);
    return n && n->plugin.interface == Stage::kInterface;
  }

  /// The cache key material of `table` used as `use` (exposed for tests and `daug run --explain` style logs).
  std::string material(const std::string& table, Use use, std::vector<std::string>& stack) {
    const auto* n = exp_.node(table);
    DAUG_CHECK(n != nullptr, "cache key: table [", table, "] was not built");
    if (std::find(stack.begin(), stack.end(), table) != stack.end())
      throw ConfigError(fmt::format("stage dependency cycle: {} -> {}", fmt::join(stack, " -> "), table));
    stack.push_back(table);
    const bool model_only = use == Use::model;
    std::string m = fmt::format("table {}\nplugin {} {} {}\nuse {}\nseed {}\n{}", table, n->plugin.interface,
                                n->plugin.name, n->plugin.build_id, model_only ? "model" : "all", run_.seed,
                                exp_.effective_options(table, model_only ? OptionScope::model : OptionScope::results));
    // [run].precision changes the trained weights and the samples of the tables that inherit it; fp32 adds nothing
    // so that fp32 keys (and the caches of earlier runs) stay as they were. [run].tf32/cudnn_benchmark/deterministic
    // are not in the key: like threads, they only change CUDA rounding, not what is computed.
    if (exp_.inherits_run_precision(table) && run_.precision != "fp32")
      m += fmt::format("run.precision {}\n", run_.precision);
    const std::string fp = n->component->fingerprint();
    if (!fp.empty()) m += fmt::format("fingerprint {}\n", fp);
    auto deps = n->deps;
    std::sort(deps.begin(), deps.end(), [](const auto& a, const auto& b) { return a.table < b.table; });
    for (const auto& d : deps) m += fmt::format("dep {} = {}\n", d.table, key(d.table, d.use, stack));
    stack.pop_back();
    return m;
  }

  std::string key(const std::string& table, Use use, std::vector<std::string>& stack) {
    const std::string id = table + (use == Use::model ? "#model" : "#all");
    if (auto it = keys_.find(id); it != keys_.end()) return it->second;
    // The digest only has to differ when the material does (not cryptographic); the material is in stage logs.
    std::string k = fmt::format("{:016x}", stable_hash(material(table, use, stack)));
    keys_[id] = k;
    return k;
  }

  std::filesystem::path output_dir(const std::string& table) {
    std::vector<std::string> stack;
    return cache_root_ / fmt::format("{}-{}", table, key(table, Use::all, stack).substr(0, 12));
  }

 private:
  Experiment& exp_;
  const RunTable& run_;
  std::filesystem::path cache_root_;
  std::map<std::string, std::string> keys_;
};

// ---- Distributed runs (WORLD_SIZE > 1): every rank runs this same function; rank 0 decides what touches shared
// files (run directory, cached-or-not, locks, `.complete`) and tells the others through all_gather_bytes.

/// Everything the ranks must agree on before they build anything: the resolved config (imports and --set applied),
/// the `daug run` flags that change what runs, and the build ids of the plugin libraries the config names.
std::string config_identity(const ConfigDocument& doc, const PluginLoader& loader, const RunOptions& options) {
  std::string text = resolved_toml(doc, false);
  std::set<std::string> names;
  std::function<void(const toml::table&)> collect = [&](const toml::table& t) {
    for (const auto& [k, v] : t) {
      if (v.is_table()) collect(*v.as_table());
      else if (k.str() == "plugin" && v.is_string()) names.insert(v.as_string()->get());
    }
  };
  collect(doc.root);
  text += "\n# daug run flags\n";
  for (const auto& o : options.only) text += fmt::format("# --stage {}\n", o);
  if (options.strict) text += "# --strict\n";
  if (options.dry_run) text += "# --dry-run\n";
  text += "# plugin libraries\n";
  for (const auto& p : loader.list())
    if (names.count(p.name)) text += fmt::format("# plugin {} {} {}\n", p.interface, p.name, p.build_id);
  return text;
}

/// "[train_clip] lr = 0.0001 on rank 0 vs lr = 0.0002 on rank 1": the first line where two identities differ.
std::string first_difference(const std::string& a, const std::string& b, int rank) {
  auto lines = [](const std::string& t) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < t.size()) {
      size_t e = t.find('\n', start);
      if (e == std::string::npos) e = t.size();
      out.push_back(t.substr(start, e - start));
      start = e + 1;
    }
    return out;
  };
  const auto la = lines(a), lb = lines(b);
  std::string table;
  for (size_t i = 0; i < std::max(la.size(), lb.size()); ++i) {
    const std::string x = i < la.size() ? la[i] : "(end of config)";
    const std::string y = i < lb.size() ? lb[i] : "(end of config)";
    if (x == y) {
      if (!x.empty() && x.front() == '[') table = x + " ";
      continue;
    }
    return fmt::format("{}{} on rank 0 vs {} on rank {}", x.rfind("# ", 0) == 0 ? "" : table, x, y, rank);
  }
  return "(same text)";
}

/// Rank 0 runs `decide`; every rank returns its result (one all_gather_bytes). When rank 0's `decide` throws, every
/// rank throws an error of the same kind with its message, so no rank is left waiting for a peer that gave up.
/// Without a distributed launch it is just decide().
std::string decided_by_main(Communicator& comm, const std::string& phase, const std::function<std::string()>& decide) {
  if (!comm.distributed()) return decide();
  std::string mine;
  std::exception_ptr error;
  if (comm.is_main()) {
    try {
      mine = "ok\n" + decide();
    } catch (const ConfigError& e) {
      error = std::current_exception();
      mine = std::string("config\n") + e.what();
    } catch (const std::exception& e) {
      error = std::current_exception();
      mine = std::string("data\n") + e.what();
    }
  }
  const auto all = comm.all_gather_bytes(mine, phase);
  if (error) std::rethrow_exception(error);
  const std::string& m = all.at(0);
  const size_t nl = m.find('\n');
  const std::string kind = m.substr(0, nl), body = nl == std::string::npos ? "" : m.substr(nl + 1);
  if (kind == "ok") return body;
  if (kind == "config") throw ConfigError(body);
  throw DataError(fmt::format("rank 0 failed ({}): {}", phase, body));
}

RunResult run_stages(const PluginLoader& loader, std::shared_ptr<const ConfigDocument> doc,
                     const std::vector<std::string>& overrides, const RunOptions& options, RunTable run);

/// The communicator of a distributed launch (daug/core/distributed.h), installed for the scope of a run.
class DistributedScope {
 public:
  DistributedScope(const RunTable& run, const ConfigView& run_view) {
    if (communicator().distributed()) return;  // joined already, for several runs (join_distributed)
    auto env = dist_env_from();
    if (!env) return;
    DistOptions o;
    o.backend = run.backend;
    o.device = run.device;
    o.where = run_view.location("backend").str() + ": [run].backend";
    double secs = run.dist_timeout_s;
    if (const char* t = std::getenv("DAUG_DIST_TIMEOUT_S"); t != nullptr && *t != '\0') {
      char* end = nullptr;
      secs = std::strtod(t, &end);
      if (end == t || *end != '\0' || !(secs > 0))
        throw ConfigError(fmt::format("environment variable DAUG_DIST_TIMEOUT_S='{}': expected seconds > 0", t));
    }
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(secs * 1000));
    if (run.device.rfind("cuda:", 0) == 0 && env->local_world_size > 1)
      throw ConfigError(fmt::format("{}: [run].device = \"{}\" puts all {} ranks of this node on one GPU; use "
                                    "device = \"cuda\" (each rank then uses cuda:LOCAL_RANK)",
                                    run_view.location("device").str(), run.device, env->local_world_size));
    comm_ = connect(*env, o);
    set_communicator(comm_);
  }
  ~DistributedScope() {
    if (comm_) set_communicator(nullptr);
  }
  DistributedScope(const DistributedScope&) = delete;
  DistributedScope& operator=(const DistributedScope&) = delete;

 private:
  std::shared_ptr<Communicator> comm_;
};

}  // namespace

std::shared_ptr<void> join_distributed(std::shared_ptr<const ConfigDocument> doc) {
  if (!dist_env_from()) return nullptr;
  ConfigView run_view(doc, "run");
  const RunTable run = read_options<RunTable>(run_view, {});
  return std::make_shared<DistributedScope>(run, run_view);
}

RunResult run_pipeline(const PluginLoader& loader, std::shared_ptr<const ConfigDocument> doc,
                       const std::vector<std::string>& overrides, const RunOptions& options) {
  ConfigView run_view(doc, "run");
  if (!run_view.exists())
    throw ConfigError(fmt::format("{}: the config has no [run] table; add [run] with stages = [\"...\"]",
                                  doc->main_file));
  RunTable run = read_options<RunTable>(run_view, {});
  if (run.stages.empty())
    throw ConfigError(fmt::format("{}: [run].stages is empty; list the stage tables to run",
                                  run_view.location("stages").str()));
  if (options.with_upstream)
    DAUG_CHECK_AS(ConfigError, !options.only.empty(), "run_pipeline: with_upstream needs the stages to run in `only`");
  else
    for (const auto& o : options.only)
      if (std::find(run.stages.begin(), run.stages.end(), o) == run.stages.end())
        throw ConfigError(fmt::format("--stage {}: not one of [run].stages ({})", o, fmt::join(run.stages, ", ")));
  DAUG_CHECK_AS(ConfigError, options.shard_count >= 1 && options.shard_index >= 0 &&
                                 options.shard_index < options.shard_count,
                "--shard must be k/N with 0 <= k < N, but got ", options.shard_index, "/", options.shard_count);

  DistributedScope distributed(run, run_view);
  try {
    return run_stages(loader, std::move(doc), overrides, options, std::move(run));
  } catch (const std::exception& e) {
    post_failure(e.what());  // the other ranks name this one and its error
    throw;
  }
}

namespace {

RunResult run_stages(const PluginLoader& loader, std::shared_ptr<const ConfigDocument> doc,
                     const std::vector<std::string>& overrides, const RunOptions& options, RunTable run) {
  Communicator& comm = communicator();
  const bool dist = comm.distributed();
  struct ConsoleGuard {
    bool active;
    ~ConsoleGuard() {
      if (active) log::set_console(log::Level::debug, "");
    }
  } console_guard{dist && !comm.is_main()};
  if (console_guard.active)  // ranks > 0: their full log goes to <run_dir>/rank<R>.log
    log::set_console(log::Level::warn, fmt::format("[rank {}] ", comm.rank()));
  if (dist) {
    // Before anything is built: ranks with different configs would train different models into one stage directory.
    const auto all = comm.all_gather_bytes(config_identity(*doc, loader, options),
                                           "configuration check: exchanging every rank's resolved configuration");
    for (size_t r = 1; r < all.size(); ++r)
      if (all[r] != all[0])
        throw ConfigError(fmt::format(
            "rank {}'s configuration differs from rank 0's (hash {:016x} on rank 0, {:016x} on rank {}): {}; every "
            "rank must run the same config, --set overrides, flags and plugin libraries",
            r, stable_hash(all[0]), stable_hash(all[r]), r, first_difference(all[0], all[r], static_cast<int>(r))));
    if (options.shard_count != 1)
      throw ConfigError(fmt::format(
          "--shard {}/{} cannot be used under a distributed launch (WORLD_SIZE = {}): the ranks already split the work "
          "among themselves; drop --shard",
          options.shard_index, options.shard_count, comm.world_size()));
  }
  RunResult result;
  result.main_rank = comm.is_main();
  // Nothing is written until the whole configuration is built and checked: a config error leaves no empty run
  // directory behind. What is logged meanwhile is held and goes to the top of run.log.
  log::hold_for_file_sink();
  struct SinkGuard {
    ~SinkGuard() { log::remove_file_sinks(); }
  } sink_guard;
  const std::string stem = run_dir_stem(run.name);
  if (run.threads > 0) at::set_num_threads(static_cast<int>(run.threads));
  log::info("device {}, seed {}, precision {}, {} LibTorch thread(s)", run.device, run.seed, run.precision,
            at::get_num_threads());

  Experiment exp(loader, doc, std::filesystem::path(run.runs_dir) / stem);
  StageRunner runner(exp, run, run.cache_dir);

  // Build every stage (and through them every component it declares) before any compute: config mistakes, and
  // tables nothing uses (a misspelt [guidanse]), surface now.
  std::vector<std::shared_ptr<Stage>> stages;
  if (options.with_upstream) {
    // The requested stages and, dependencies first, every upstream stage they declared in create().
    std::vector<std::string> order;
    std::function<void(const std::string&)> visit = [&](const std::string& table) {
      if (std::find(order.begin(), order.end(), table) != order.end()) return;
      runner.stage(table);  // builds it, which records its dependencies
      for (const auto& dep : exp.dependencies_of(table))
        if (runner.is_stage(dep)) visit(dep);
      order.push_back(table);
    };
    for (const auto& table : options.only) visit(table);
    run.stages = order;
  }
  for (const auto& table : run.stages) stages.push_back(runner.stage(table));
  if (!options.with_upstream) exp.check_all_tables_used({"run", "sweep"});
  if (dist) {  // same config but other cache keys: a rank sees other input files (no shared filesystem?)
    std::string dirs;
    for (const auto& table : run.stages) dirs += fmt::format("[{}] {}\n", table, runner.output_dir(table).string());
    const auto all = comm.all_gather_bytes(dirs, "configuration check: exchanging the stages' cache directories");
    for (size_t r = 1; r < all.size(); ++r)
      if (all[r] != all[0])
        throw DataError(fmt::format(
            "rank {} computes other stage cache keys than rank 0 from the same configuration: {}; its input files "
            "differ (every rank must see the same data, and the same cache_dir on a shared filesystem)",
            r, first_difference(all[0], all[r], static_cast<int>(r))));
  }
  auto selected = [&](const std::string& table) {
    return options.only.empty() || options.with_upstream ||
           std::find(options.only.begin(), options.only.end(), table) != options.only.end();
  };
  auto complete = [&](const std::string& table) {
    return std::filesystem::exists(runner.output_dir(table) / ".complete");
  };
  // Every upstream stage a stage to run declared must be finished or run before it; otherwise it fails mid-run.
  // (Rank 0 checks the shared cache for every rank.)
  decided_by_main(comm, "stage check: rank 0 looks for finished upstream stages", [&] {
    std::vector<std::string> available;
    for (const auto& table : run.stages) {
      const bool cached = complete(table);
      if (!cached && selected(table))
        for (const auto& dep : exp.dependencies_of(table)) {
          if (!runner.is_stage(dep) || std::find(available.begin(), available.end(), dep) != available.end() ||
              complete(dep))
            continue;
          throw ConfigError(fmt::format(
              "stage [{}] needs the output of stage [{}], which is not finished for this "
              "configuration (expected {}) and does not run before it; add [{}] to "
              "[run].stages before [{}]{}",
              table, dep, runner.output_dir(dep).string(), dep, table, options.only.empty() ? "" : " (or to --stage)"));
        }
      if (cached || selected(table)) available.push_back(table);
    }
    return std::string();
  });

  std::map<std::string, std::filesystem::path> done;
  // Artifact lookup for the stage in `consumer`: only upstream stages it asked for in create(), only declared names.
  auto artifact_lookup = [&](const std::string& consumer) {
    return [&, consumer](const std::string& table, const std::string& name) -> std::filesystem::path {
      const auto deps = exp.dependencies_of(consumer);
      if (std::find(deps.begin(), deps.end(), table) == deps.end())
        throw ConfigError(fmt::format("stage [{}] read an artifact of [{}] without declaring it: request the stage in "
                                      "create() (ctx.component<daug::Stage>(\"{}\")) so the cache key covers it",
                                      consumer, table, table));
      if (!runner.is_stage(table))
        throw ConfigError(fmt::format("[{}] asked for artifact '{}' of [{}], which is not a stage table", consumer,
                                      name, table));
      std::filesystem::path dir;
      if (auto it = done.find(table); it != done.end()) {
        dir = it->second;
      } else {
        dir = runner.output_dir(table);
        if (!std::filesystem::exists(dir / ".complete"))
          throw ConfigError(fmt::format("stage [{}] has no finished output for this configuration (expected {}); add "
                                        "it to [run].stages before [{}]", table, dir.string(), consumer));
      }
      auto producer = runner.stage(table);
      std::vector<std::string> names;
      for (const auto& a : producer->outputs()) {
        if (a.name == name) return dir / a.file;
        names.push_back(a.name);
      }
      throw ConfigError(fmt::format("[{}] asked for artifact '{}' of stage [{}] ({}), which declares only: {}", consumer,
                                    name, table, producer->describe(), fmt::join(names, ", ")));
    };
  };

  if (options.dry_run) {  // no run directory either
    for (const auto& table : run.stages) {
      auto dir = runner.output_dir(table);
      const bool cached = std::filesystem::exists(dir / ".complete");
      result.stage_dirs.emplace_back(table, dir);
      result.summary += fmt::format("- [{}] {}: {} {}\n", table, runner.stage(table)->describe(),
                                    cached ? "cached at" : "would run in", dir.string());
    }
    log::info("dry run: the configuration is valid; nothing was run or written");
    return result;
  }

  // Rank 0 alone creates the run directory and writes its files; the other ranks log to <run_dir>/rank<R>.log.
  result.run_dir = decided_by_main(comm, "run directory: rank 0 creates it",
                                   [&] { return make_run_dir(run.runs_dir, stem).string(); });
  exp.set_run_dir(result.run_dir);
  if (comm.is_main()) {
    log::add_file_sink((result.run_dir / "run.log").string());
    write_file_atomic(result.run_dir / "resolved.toml", resolved_toml(*doc, true));
    write_file_atomic(result.run_dir / "overrides.txt", fmt::format("{}\n", fmt::join(overrides, "\n")));
  } else {
    log::add_file_sink((result.run_dir / fmt::format("rank{}.log", comm.rank())).string());
  }
  log::info("run directory: {}", result.run_dir.string());
  if (comm.is_main()) {
    std::string plugins;
    for (const auto& [table, name, lib] : exp.built())
      plugins += fmt::format("[{}] {} {}\n", table, name, lib.string());
    write_file_atomic(result.run_dir / "plugins.txt", plugins);
    write_file_atomic(result.run_dir / "effective.toml",
                      fmt::format("[run]\n{}{}", dump_options(run), exp.effective_toml()));
  }

  for (size_t i = 0; i < stages.size(); ++i) {
    const std::string& table = run.stages[i];
    auto dir = runner.output_dir(table);
    result.stage_dirs.emplace_back(table, dir);
    comm.set_phase(fmt::format("stage [{}] {}", table, stages[i]->describe()));
    // Rank 0 decides for every rank (no rank re-runs a cached stage): cached, skipped, finished by another process
    // while this one waited for its lock, or run (rank 0 then holds the lock). Under a distributed launch rank 0
    // polls the lock instead of blocking on it, so the other ranks' collective never waits past the timeout.
    std::unique_ptr<StageLock> lock;
    std::string step;
    for (bool told_waiting = false;;) {
      step = decided_by_main(comm, fmt::format("stage [{}]: rank 0 decides whether it is cached", table), [&] {
        if (std::filesystem::exists(dir / ".complete")) return std::string(told_waiting ? "reused" : "cached");
        if (!selected(table)) return std::string("skipped");
        std::filesystem::create_directories(dir);
        // Shards of one stage run side by side on purpose (disjoint items): one lock per shard.
        lock = std::make_unique<StageLock>(
            dir / (options.shard_count == 1
                       ? std::string(".lock")
                       : fmt::format(".lock.shard{}of{}", options.shard_index, options.shard_count)),
            table, !dist);
        if (!lock->locked()) {
          if (!told_waiting)
            log::info("stage [{}]: another daug process is running this stage (lock {}); waiting for it to finish",
                      table, (dir / ".lock").string());
          told_waiting = true;
          lock.reset();
          return std::string("busy");
        }
        if ((lock->waited() || told_waiting) && std::filesystem::exists(dir / ".complete"))
          return std::string("reused");
        write_file_atomic(dir / "stage.toml", exp.config(table).to_toml());
        write_file_atomic(dir / "effective.toml",
                          fmt::format("[{}]\n{}", table, exp.effective_options(table, OptionScope::everything)));
        return std::string("run");
      });
      if (step != "busy") break;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (step == "cached") {
      log::info("stage [{}] {}: cached at {}", table, stages[i]->describe(), dir.string());
      done[table] = dir;
    } else if (step == "skipped") {
      log::info("stage [{}]: skipped (--stage)", table);
      continue;
    } else if (step == "reused") {
      log::info("stage [{}] {}: finished by the other process; reusing {}", table, stages[i]->describe(), dir.string());
      done[table] = dir;
    } else {
      // Every rank runs the stage; it splits the work itself through daug::communicator(). A rank whose run()
      // throws exits non-zero, and the others fail in their next collective (the communicator names it).
      log::info("stage [{}] {} -> {}", table, stages[i]->describe(), dir.string());
      StageContext ctx{dir, artifact_lookup(table), exp, options.shard_index, options.shard_count, options.strict,
                       stages[i]->outputs()};
      auto t0 = std::chrono::steady_clock::now();
      stages[i]->run(ctx);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log::info("stage [{}] finished in {:.1f} s", table, secs);
      if (dist) comm.barrier(fmt::format("stage [{}]: every rank finished its part", table));
      if (options.shard_count == 1 && comm.is_main())
        write_file_atomic(dir / ".complete", fmt::format("{:.3f} s\n", secs));
      if (dist) comm.barrier(fmt::format("stage [{}]: rank 0 marked it complete", table));
      done[table] = dir;
    }
    if (!comm.is_main()) continue;
    std::string s = stages[i]->summary(dir);
    if (!s.empty()) result.summary += fmt::format("## {}\n\n{}\n\n", table, s);
  }
  if (!comm.is_main()) return result;
  std::string stage_list;
  for (const auto& [t, d] : result.stage_dirs) stage_list += fmt::format("{} {}\n", t, d.string());
  write_file_atomic(result.run_dir / "stages.txt", stage_list);
  write_file_atomic(result.run_dir / "summary.md", result.summary);
  std::error_code ec;
  auto latest = std::filesystem::path(run.runs_dir) / "latest";
  std::filesystem::remove(latest, ec);
  std::filesystem::create_directory_symlink(std::filesystem::absolute(result.run_dir), latest, ec);
  return result;
}

}  // namespace

}  // namespace daug::core
