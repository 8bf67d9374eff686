"""A single-node Apache Kafka broker (KRaft) run from Maven Central jars, on loopback.

``provision`` resolves the broker's jars once into a cache outside the repository
(``$XDG_CACHE_HOME/auditstream/kafka-<version>``), ``up`` formats storage and starts the
broker (or reuses the one already running), ``down`` stops it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka.admin import AdminClient

from auditstream.config import LocalKafka


class KafkaSetupError(RuntimeError):
    """The local broker could not be provisioned or started; the message says what to do."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    topics: int | None
    detail: str


JAVA_HINT = "install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)"


def cache_dir(version: str) -> Path:
    override = os.environ.get("AUDITSTREAM_KAFKA_JARS")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "auditstream" / f"kafka-{version}"


def _require(tool: str, install_hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise KafkaSetupError(f"`{tool}` is not on PATH: {install_hint}")
    return path


def provision(local: LocalKafka) -> Path:
    """Resolve the broker jars from Maven Central into the cache (once); returns that folder."""
    target = cache_dir(local.kafka_version)
    if (target / ".complete").exists():
        return target
    _require("java", JAVA_HINT)
    mvn = _require("mvn", "install Apache Maven (e.g. `apt-get install maven`)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".kafka-", dir=target.parent))
    pom = resources.files("auditstream.infra").joinpath("pom.xml").read_text()
    (staging / "pom.xml").write_text(pom)
    cmd = [
        mvn, "-q", "-B", "-f", str(staging / "pom.xml"), "dependency:copy-dependencies",
        f"-Dkafka.version={local.kafka_version}", "-DincludeScope=runtime",
        f"-DoutputDirectory={staging / 'libs'}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise KafkaSetupError(
            "Maven could not fetch the Kafka jars from Maven Central:\n  "
            + "\n  ".join(tail)
            + "\nCheck network access to Maven Central, then run `auditstream kafka up` again."
        )
    (staging / "libs" / ".complete").write_text(local.kafka_version)
    if target.exists():
        shutil.rmtree(target)
    (staging / "libs").rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _sasl_lines(local: LocalKafka) -> list[str]:
    """An extra SASL_PLAINTEXT listener with PLAIN users (``local.sasl_port``), or nothing."""
    if local.sasl_port is None:
        return []
    users = " ".join(f'user_{name}="{password}"' for name, password in local.sasl_users)
    return [
        "sasl.enabled.mechanisms=PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config="
        f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
    ]


def _properties(local: LocalKafka) -> str:
    listeners = [f"PLAINTEXT://127.0.0.1:{local.port}"]
    if local.sasl_port is not None:
        listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{local.sasl_port}")
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"listeners={','.join(listeners)},CONTROLLER://127.0.0.1:{local.controller_port}",
            f"advertised.listeners={','.join(listeners)}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map="
            "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            *_sasl_lines(local),
            f"controller.quorum.bootstrap.servers=127.0.0.1:{local.controller_port}",
            f"log.dirs={local.home / 'data'}",
            "num.partitions=6",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=168",
            "",
        ]
    )


def _pid_file(local: LocalKafka) -> Path:
    return local.home / "broker.pid"


def _read_pid(local: LocalKafka) -> int | None:
    try:
        pid = int(_pid_file(local).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _topic_count(bootstrap: str, timeout: float = 3.0) -> int | None:
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000}
    )
    try:
        return len(admin.list_topics(timeout=timeout).topics)
    except Exception:
        return None


def status(local: LocalKafka) -> BrokerStatus:
    pid = _read_pid(local)
    if pid is None:
        detail = "not running"
        if _port_open(local.port):
            detail = f"port {local.port} is in use by another process"
        return BrokerStatus(False, None, local.bootstrap, None, detail)
    topics = _topic_count(local.bootstrap) if _port_open(local.port) else None
    detail = "ready" if topics is not None else "starting or unhealthy"
    return BrokerStatus(topics is not None, pid, local.bootstrap, topics, detail)


def up(local: LocalKafka, timeout: float = 90.0) -> BrokerStatus:
    """Start the broker, or reuse the one already running. Returns once topics can be listed."""
    current = status(local)
    if current.running:
        return current
    if current.pid is None and _port_open(local.port):
        raise KafkaSetupError(
            f"port {local.port} is already in use by a process that is not our broker: "
            "stop it, or pick another port with AUDITSTREAM_KAFKA_PORT"
        )
    if current.pid is None:
        _start(local, provision(local))
    return _wait_ready(local, timeout)


def _start(local: LocalKafka, jars: Path) -> None:
    java = _require(
        "java", "install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)"
    )
    local.home.mkdir(parents=True, exist_ok=True)
    props = local.home / "server.properties"
    props.write_text(_properties(local))
    log4j = resources.files("auditstream.infra").joinpath("log4j2.properties").read_text()
    (local.home / "log4j2.properties").write_text(log4j)
    classpath = f"{jars}/*"
    if not (local.home / "data" / "meta.properties").exists():
        cluster_id = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        fmt = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "--standalone",
             "-t", cluster_id, "-c", str(props)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise KafkaSetupError(f"formatting KRaft storage failed: {fmt.stderr or fmt.stdout}")
    log = (local.home / "broker.log").open("ab")
    proc = subprocess.Popen(
        [java, f"-Xmx{local.heap_mb}m", f"-Xms{min(local.heap_mb, 256)}m",
         "-XX:+UseG1GC", "-Djava.awt.headless=true",
         f"-Dlog4j2.configurationFile={local.home / 'log4j2.properties'}",
         f"-Dkafka.logs.dir={local.home / 'logs'}",
         "-cp", classpath, "kafka.Kafka", str(props)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=local.home,
    )  # fmt: skip
    _pid_file(local).write_text(str(proc.pid))


def _wait_ready(local: LocalKafka, timeout: float) -> BrokerStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _read_pid(local)
        if pid is None:
            tail = _log_tail(local)
            raise KafkaSetupError(f"the broker exited during start-up. Last log lines:\n{tail}")
        current = status(local)
        if current.running:
            return current
        time.sleep(0.3)
    raise KafkaSetupError(
        f"the broker did not become ready within {timeout:.0f}s; see {local.home / 'broker.log'}"
    )


def _log_tail(local: LocalKafka, lines: int = 20) -> str:
    try:
        return "\n".join(
            (local.home / "broker.log").read_text(errors="replace").splitlines()[-lines:]
        )
    except FileNotFoundError:
        return "(no log)"


def down(local: LocalKafka, timeout: float = 30.0) -> bool:
    """Stop the broker; True if one was running."""
    pid = _read_pid(local)
    if pid is None:
        _pid_file(local).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    _pid_file(local).unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child, so it does not linger as a zombie.
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
