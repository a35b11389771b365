"""The servers a benchmark run starts: PostgreSQL, Redis (and Redis Sentinel)
and pgpool-II.

Everything listens on 127.0.0.1 only, on ports picked free at start, and
keeps its files under the run's scratch directory.  As root, servers run as
the ``postgres`` user (initdb refuses root); clients (psql, pgbench, wrk) run
as the caller.  Every process started here is remembered and stopped by
``Procs.stop_all`` -- by its own PID, never by name.
"""

import os
import pwd
import signal
import socket
import subprocess
import time

PGBIN = os.environ.get("BENCH_PGBIN", "/usr/lib/postgresql/15/bin")


class BenchError(Exception):
    pass


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Procs:
    """Runs commands as the server user and remembers what it started."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.is_root = os.geteuid() == 0
        if self.is_root:
            pw = pwd.getpwnam("postgres")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        else:
            self.uid, self.gid = os.geteuid(), os.getegid()
        self.stoppers = []      # (name, callable), run in reverse order

    def server_env(self):
        env = dict(os.environ)
        env["HOME"] = self.scratch
        env["TMPDIR"] = "/tmp"
        env.pop("PGOPTIONS", None)
        return env

    def _demote(self):
        if self.is_root:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)

    def run_as_server(self, args, check=True, **kw):
        """Run a command as the server user and wait for it."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        r = subprocess.run(args, preexec_fn=self._demote, cwd=self.scratch,
                           env=self.server_env(), text=True, **kw)
        if check and r.returncode != 0:
            raise BenchError("%s failed (exit %d):\n%s" % (" ".join(args), r.returncode,
                                                           (r.stdout or "")[-3000:]))
        return r

    def popen_as_server(self, args, **kw):
        return subprocess.Popen(args, preexec_fn=self._demote, cwd=self.scratch,
                                env=self.server_env(), **kw)

    def own(self, path):
        if self.is_root:
            os.chown(path, self.uid, self.gid)

    def mkdir(self, path):
        os.makedirs(path, exist_ok=True)
        self.own(path)
        return path

    def on_stop(self, name, fn):
        self.stoppers.append((name, fn))

    def stop_all(self):
        while self.stoppers:
            name, fn = self.stoppers.pop()
            try:
                fn()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (name, e))


def pid_alive(pid):
    """Whether pid runs (a zombie does not: PID 1 of a container may be slow to reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def wait_gone(pid, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if not pid_alive(pid):
            return True
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return not pid_alive(pid)


def read_pid(path):
    try:
        with open(path) as f:
            s = f.readline().strip()
        return int(s) if s.isdigit() else None
    except OSError:
        return None


def pid_cwd(pid):
    try:
        return os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return None


# --- CPU time from /proc: what a process (and its children) cost the machine ---

TICK = None


def _ticks():
    global TICK
    if TICK is None:
        TICK = os.sysconf("SC_CLK_TCK")
    return TICK


def _stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state): utime 14, stime 15, cutime 16, cstime 17
    return [int(x) for x in fields[11:15]]


def _children(pid):
    """PIDs of a process's live children (/proc/PID/task/*/children, or a scan
    of /proc where the kernel has no such file)."""
    kids = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                kids += [int(x) for x in f.read().split()]
        return kids
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def tree_cpu_s(pid):
    """CPU seconds of a process, its children that ended (as it reaped them)
    and its live children: a postmaster's, the whole server's so far."""
    st = _stat(pid)
    if st is None:
        return None
    total = sum(st)
    for k in _children(pid):
        ks = _stat(k)
        if ks:
            total += ks[0] + ks[1]
    return total / float(_ticks())


def process_cpu_s(pid):
    st = _stat(pid) if pid else None
    return (st[0] + st[1]) / float(_ticks()) if st else None


def postmaster_pid(pg):
    return read_pid(os.path.join(pg.data, "postmaster.pid"))


def child_named(pid, title):
    """The PID of a live child of pid whose command line contains title (a
    PostgreSQL auxiliary process by its process title), or None."""
    for k in _children(pid):
        try:
            with open("/proc/%d/cmdline" % k, "rb") as f:
                if title in f.read().decode(errors="replace"):
                    return k
        except OSError:
            continue
    return None


class Redis:
    def __init__(self, procs, name, args=()):
        self.procs = procs
        self.name = name
        self.dir = procs.mkdir(os.path.join(procs.scratch, name))
        self.pidfile = os.path.join(self.dir, "redis.pid")
        self.logfile = os.path.join(self.dir, "redis.log")
        self.port = None
        self.pid = None
        self.args = list(args)      # extra arguments, e.g. --replicaof HOST PORT
        procs.on_stop(name, self.stop)

    def command(self, port):
        return ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "yes",
                "--maxmemory", "2gb", "--maxmemory-policy", "allkeys-lru",
                "--dir", self.dir, "--pidfile", self.pidfile, "--logfile", self.logfile] + self.args

    def start(self, port=None):
        for attempt in range(5):
            p = port or free_port()
            if os.path.exists(self.pidfile):
                os.unlink(self.pidfile)
            self.procs.run_as_server(self.command(p))
            for _ in range(100):
                pid = read_pid(self.pidfile)
                if pid and self.ping(p):
                    self.port, self.pid = p, pid
                    return p
                if pid and not pid_alive(pid):
                    break
                time.sleep(0.05)
            if port:
                break
        raise BenchError("redis-server did not start; see %s" % self.logfile)

    def ping(self, port=None):
        try:
            r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port or self.port), "PING"],
                               capture_output=True, text=True, timeout=2)
            return r.stdout.strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def cli(self, *args, timeout=5):
        """redis-cli output (trimmed); '' when it does not answer in time."""
        try:
            r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                               capture_output=True, text=True, timeout=timeout)
            return r.stdout.strip()
        except subprocess.TimeoutExpired:
            return ""

    def _ours(self):
        return (self.pid is not None and pid_alive(self.pid)
                and pid_cwd(self.pid) == os.path.realpath(self.dir))

    def pause(self):
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        wait_gone(self.pid, 5)
        self.pid = None

    def restart_same_port(self):
        return self.start(self.port)

    def stop(self):
        if not self._ours():
            return
        os.kill(self.pid, signal.SIGCONT)  # a paused Redis cannot exit
        os.kill(self.pid, signal.SIGTERM)
        if not wait_gone(self.pid, 5):
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None


class Sentinel(Redis):
    """redis-sentinel (Debian's package) monitoring one master.  Its
    configuration file is written at the first start and kept: a sentinel
    rewrites it with what it learns (the current master, its replicas, the
    other sentinels), so a restarted one knows where the master went."""

    def __init__(self, procs, name, master_name, master_port, quorum=2, down_after_ms=1000,
                 failover_timeout_ms=3000):
        Redis.__init__(self, procs, name)
        self.master_name = master_name
        self.monitor = (master_port, quorum, down_after_ms, failover_timeout_ms)
        self.conf = os.path.join(self.dir, "sentinel.conf")
        self.conf_port = None

    def command(self, port):
        if self.conf_port != port:
            mport, quorum, down_after, timeout = self.monitor
            n = self.master_name
            with open(self.conf, "w") as f:
                f.write("\n".join([
                    "port %d" % port, "bind 127.0.0.1", "daemonize yes",
                    "pidfile %s" % self.pidfile, "logfile %s" % self.logfile, "dir %s" % self.dir,
                    "sentinel monitor %s 127.0.0.1 %d %d" % (n, mport, quorum),
                    "sentinel down-after-milliseconds %s %d" % (n, down_after),
                    "sentinel failover-timeout %s %d" % (n, timeout),
                    "sentinel parallel-syncs %s 1" % n]) + "\n")
            self.procs.own(self.conf)
            self.conf_port = port
        return ["redis-sentinel", self.conf]

    def master_addr(self):
        """host:port of the master as this sentinel names it now, or None."""
        out = self.cli("SENTINEL", "get-master-addr-by-name", self.master_name, timeout=2).split()
        return "%s:%s" % (out[0], out[1]) if len(out) == 2 and out[1].isdigit() else None

    def master_info(self):
        """SENTINEL master NAME as a dict (flags, num-slaves, num-other-sentinels, ...)."""
        out = self.cli("SENTINEL", "master", self.master_name, timeout=2).splitlines()
        return dict(zip(out[0::2], out[1::2])) if len(out) % 2 == 0 else {}

    def replicas_up(self):
        """Replicas this sentinel sees up and linked to the master."""
        lines = self.cli("SENTINEL", "replicas", self.master_name, timeout=2).splitlines()
        up, cur = 0, {}
        for k, v in zip(lines[0::2], lines[1::2]):
            if k == "name" and cur:
                up += cur.get("flags") == "slave" and cur.get("master-link-status") == "ok"
                cur = {}
            cur[k] = v
        if cur:
            up += cur.get("flags") == "slave" and cur.get("master-link-status") == "ok"
        return up


class Postgres:
    def __init__(self, procs, name, settings):
        self.procs = procs
        self.name = name
        self.base = procs.mkdir(os.path.join(procs.scratch, name))
        self.data = os.path.join(self.base, "data")
        self.logfile = os.path.join(self.base, "postgres.log")
        self.sockdir = procs.mkdir(os.path.join(self.base, "run"))
        self.settings = dict(settings)
        self.port = None
        procs.on_stop(name, self.stop)

    def initdb(self):
        self.procs.run_as_server([
            os.path.join(PGBIN, "initdb"), "-D", self.data, "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"])

    def copy_from(self, other):
        """A copy of another, stopped, cluster's data directory."""
        self.procs.run_as_server(["cp", "-a", other.data, self.data])
        pid = os.path.join(self.data, "postmaster.pid")
        if os.path.exists(pid):
            os.unlink(pid)

    def base_backup_from(self, primary):
        """A streaming standby of a running primary: pg_basebackup -R (standby.signal
        and primary_conninfo), WAL streamed during the copy, no replication slot
        (nothing is retained on the primary once this server stops)."""
        self.procs.run_as_server([
            os.path.join(PGBIN, "pg_basebackup"), "-D", self.data, "-R", "-X", "stream",
            "-c", "fast", "--no-sync", "-h", "127.0.0.1", "-p", str(primary.port),
            "-U", "postgres"])

    def write_conf(self):
        lines = ["# written by bench/run at each start",
                 "listen_addresses = '127.0.0.1'",
                 "port = %d" % self.port,
                 "unix_socket_directories = '%s'" % self.sockdir]
        for k, v in self.settings.items():
            if isinstance(v, str):
                v = "'%s'" % v.replace("'", "''")
            lines.append("%s = %s" % (k, v))
        path = os.path.join(self.data, "bench.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.procs.own(path)
        conf = os.path.join(self.data, "postgresql.conf")
        with open(conf) as f:
            text = f.read()
        if "include_if_exists = 'bench.conf'" not in text:
            with open(conf, "a") as f:
                f.write("\ninclude_if_exists = 'bench.conf'\n")

    def start(self):
        for attempt in range(5):
            if self.port is None or attempt > 0:
                self.port = free_port()
            self.write_conf()
            r = self.procs.run_as_server([
                os.path.join(PGBIN, "pg_ctl"), "start", "-w", "-t", "120", "-D", self.data,
                "-l", self.logfile], check=False)
            if r.returncode == 0:
                return self.port
            if port_open(self.port):
                continue   # someone took the port
            break
        raise BenchError("PostgreSQL %s did not start:\n%s" % (self.name, self.log_tail()))

    def restart(self):
        self.stop()
        self.start()

    def running(self):
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def stop(self, mode="fast"):
        if not self.running():
            return
        r = self.procs.run_as_server([os.path.join(PGBIN, "pg_ctl"), "stop", "-m", mode, "-w",
                                      "-t", "60", "-D", self.data], check=False)
        if r.returncode != 0 and self.running():
            self.procs.run_as_server([os.path.join(PGBIN, "pg_ctl"), "stop", "-m", "immediate",
                                      "-w", "-D", self.data], check=False)

    def log_tail(self, n=30):
        try:
            with open(self.logfile) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def conninfo_env(self, db="housing"):
        env = dict(os.environ)
        env.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER="postgres",
                   PGDATABASE=db, PGAPPNAME="bench")
        env.pop("PGOPTIONS", None)
        env.pop("PGPASSWORD", None)
        return env

    def psql(self, sql, db="housing", check=True, timeout=3600):
        """Run SQL (one or more statements); returns the output (unaligned, tuples only).

        sql may be a list: its items run one after the other in one session,
        each in its own transaction (one -c each)."""
        cmds = []
        for one in ([sql] if isinstance(sql, str) else sql):
            cmds += ["-c", one]
        r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                            "-At", "-F", "\t", "-c", "SET client_min_messages = warning"] + cmds,
                           env=self.conninfo_env(db), capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise BenchError("psql on %s failed: %s\n%s" % (
                self.name, (sql if isinstance(sql, str) else "; ".join(sql))[:500], r.stderr))
        return r.stdout.strip()

    def psql_file(self, path, db="housing"):
        r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                            "-At", "-f", path], env=self.conninfo_env(db),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError("psql -f %s on %s failed:\n%s" % (path, self.name, r.stderr))
        return r.stdout.strip()

    STAT_COLS = ("l1_hits", "l2_hits", "misses", "db_executions", "bypasses", "l1_stores",
                 "l2_stores", "oversize", "redis_errors", "breaker_skips", "breaker_opens",
                 "breaker_closes", "fill_waits", "fill_timeouts", "early_refreshes",
                 "stale_served", "invalidations", "publishes", "publish_failures",
                 "wal_records_logged", "wal_records_replayed", "wal_slots_resolved",
                 "wal_overflows", "standby_catching_up", "fragment_hits", "fragment_fills",
                 "heartbeats")

    def stats(self, db="housing"):
        out = self.psql("SELECT %s, breaker_state FROM housing_cache.stats" %
                        ", ".join(self.STAT_COLS), db=db)
        vals = out.split("\t")
        d = {c: int(v) for c, v in zip(self.STAT_COLS, vals)}
        d["breaker_state"] = vals[-1]
        return d


def stats_delta(before, after):
    return {k: after[k] - before[k] for k in before if isinstance(before[k], int)}


class Pgpool:
    def __init__(self, procs, name, backend_port, children=8):
        self.procs = procs
        self.dir = procs.mkdir(os.path.join(procs.scratch, name))
        self.backend_port = backend_port
        self.children = children
        self.port = None
        self.proc = None
        self.logfile = os.path.join(self.dir, "pgpool.log")
        procs.on_stop(name, self.stop)

    def write_conf(self):
        d = self.dir
        oiddir = self.procs.mkdir(os.path.join(d, "oiddir"))
        conf = {
            "backend_clustering_mode": "'raw'",
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "socket_dir": "'%s'" % d,
            "pcp_listen_addresses": "''",
            "pcp_port": self.pcp_port,
            "pcp_socket_dir": "'%s'" % d,
            "unix_socket_permissions": "0700",
            "backend_hostname0": "'127.0.0.1'",
            "backend_port0": self.backend_port,
            "backend_weight0": 1,
            "backend_flag0": "'DISALLOW_TO_FAILOVER'",
            "enable_pool_hba": "off",
            "pool_passwd": "''",
            "num_init_children": self.children,
            "max_pool": 1,
            "child_life_time": 0,
            "child_max_connections": 0,
            "connection_life_time": 0,
            "client_idle_limit": 0,
            "pid_file_name": "'%s'" % os.path.join(d, "pgpool.pid"),
            "logdir": "'%s'" % d,
            "log_destination": "'stderr'",
            "log_min_messages": "warning",
            "health_check_period": 0,
            "sr_check_period": 0,
            "load_balance_mode": "off",
            "failover_on_backend_error": "off",
            "use_watchdog": "off",
            "memory_cache_enabled": "on",
            "memqcache_method": "'shmem'",
            "memqcache_total_size": "'64MB'",
            "memqcache_max_num_cache": 1000000,
            "memqcache_expire": 0,
            "memqcache_auto_cache_invalidation": "on",
            "memqcache_maxcache": "'400kB'",
            "memqcache_cache_block_size": "'1MB'",
            "memqcache_oiddir": "'%s'" % oiddir,
        }
        path = os.path.join(d, "pgpool.conf")
        with open(path, "w") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        for extra in ("pcp.conf", "pool_hba.conf"):
            open(os.path.join(d, extra), "w").close()
        for name in ("pgpool.conf", "pcp.conf", "pool_hba.conf"):
            self.procs.own(os.path.join(d, name))
        return path

    def start(self):
        for attempt in range(5):
            self.port, self.pcp_port = free_port(), free_port()
            conf = self.write_conf()
            logf = open(self.logfile, "a")
            self.proc = self.procs.popen_as_server(
                ["pgpool", "-n", "-f", conf, "-F", os.path.join(self.dir, "pcp.conf"),
                 "-a", os.path.join(self.dir, "pool_hba.conf")],
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            logf.close()
            for _ in range(200):
                if self.proc.poll() is not None:
                    break
                if port_open(self.port) and self.query_ok():
                    return self.port
                time.sleep(0.05)
            self.stop()
        raise BenchError("pgpool did not start; log:\n" + open(self.logfile).read()[-3000:])

    def env(self, db="housing"):
        env = dict(os.environ)
        env.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER="postgres", PGDATABASE=db)
        env.pop("PGOPTIONS", None)
        return env

    def psql(self, sql, db="housing"):
        r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-q", "-At", "-F", "\t", "-c", sql],
                           env=self.env(db), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise BenchError("psql through pgpool failed: %s\n%s" % (sql, r.stderr))
        return r.stdout.strip()

    def query_ok(self):
        try:
            return self.psql("SELECT 1") == "1"
        except (BenchError, subprocess.TimeoutExpired):
            return False

    def cache_stats(self):
        """(num_selects, num_cache_hits) of SHOW pool_cache."""
        out = self.psql("SHOW pool_cache")
        # columns: num_cache_hits, num_selects, cache_hit_ratio, ...
        vals = out.splitlines()[0].split("\t")
        return int(vals[0]), int(vals[1])

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        # pgpool's parent stops its children on SIGINT (fast shutdown)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
