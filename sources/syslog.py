"""Linux auth log (``/var/log/auth.log``, ``/var/log/secure``, ``journalctl -o short-iso``):
sshd sign-ins, failures and session ends, and sudo.

Each ``Failed ... for`` line is one failed attempt (rsyslog's ``message repeated N times: [
...]`` is N of them). ``Invalid user`` / ``PAM n more authentication failures`` / ``maximum
authentication attempts exceeded`` repeat attempts already logged as ``Failed`` lines, so they
are skipped rather than counted twice.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from auditstream.sources.base import Options, Parsed, ip_or_none, source_event_id

_CLASSIC = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d) (?P<host>\S+) "
    r"(?P<prog>[\w\-./()]+?)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$"
)
_ISO = re.compile(
    r"^(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (?P<host>\S+) "
    r"(?P<prog>[\w\-./()]+?)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$"
)
_REPEATED = re.compile(r"^message repeated (?P<n>\d+) times: \[ ?(?P<inner>.*?) ?\]$")
_FAILED = re.compile(
    r"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*?) from (?P<ip>\S+)"
    r" port (?P<port>\d+)"
)
_ACCEPTED = re.compile(
    r"^Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<ip>\S+) port (?P<port>\d+)"
)
_CLOSED = re.compile(r"^pam_unix\(sshd:session\): session closed for user (?P<user>\S+)")
_SUDO = re.compile(
    r"^\s*(?P<user>\S+) : (?:(?P<problem>[^;]*?) ; )?TTY=(?P<tty>[^;]*) ; PWD=[^;]* ; "
    r"USER=(?P<target>[^;]*) ; (?:[A-Z]+=[^;]* ; )*COMMAND=(?P<command>.*)$"
)
_REPEATS_OF_FAILED = ("Invalid user ", "PAM ", "error: maximum authentication attempts")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def parse(text: str, options: Options) -> Parsed:
    out = Parsed()
    zone = ZoneInfo(options.timezone)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        head = _ISO.match(line) or _CLASSIC.match(line)
        if head is None:
            out.skip("not a syslog line")
            continue
        at = _when(head.groupdict(), options, zone)
        if at is None:
            out.skip("bad timestamp")
            continue
        msg, copies = head["msg"], 1
        repeated = _REPEATED.match(msg)
        if repeated:
            msg, copies = repeated["inner"], int(repeated["n"])
        prog = head["prog"]
        fields = _map(prog, msg, head["host"], options.tenant_id)
        if fields is None:
            out.skip(f"{prog}: not a sign-in or sudo line" if prog in ("sshd", "sudo") else prog)
            continue
        for copy in range(copies):
            event = dict(fields)
            event["occurred_at"] = at
            event["event_id"] = source_event_id(at, "syslog", line, str(number), str(copy))
            out.events.append(event)
    return out


def _when(head: dict[str, Any], options: Options, zone: ZoneInfo) -> datetime | None:
    try:
        if head.get("iso"):
            moment = datetime.fromisoformat(head["iso"].replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=zone)
        hour, minute, second = (int(x) for x in head["time"].split(":"))
        month, day = _MONTHS[head["mon"]], int(head["day"])
        now = options.now.astimezone(zone)
        year = now.year if (month, day) <= (now.month, now.day) else now.year - 1
        return datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except (KeyError, ValueError):
        return None


def _map(prog: str, msg: str, host: str, tenant: str) -> dict[str, Any] | None:
    resource = {"type": "host", "id": host}
    base: dict[str, Any] = {"tenant_id": tenant, "resource": resource, "channel": "cli"}
    if prog == "sshd":
        if m := _FAILED.match(msg):
            return {
                **base,
                "actor": {"id": m["user"] or "-"},
                "action": "sign_in_failed",
                "outcome": "failure",
                "ip": ip_or_none(m["ip"]),
                "metadata": {
                    "source": "sshd",
                    "method": m["method"],
                    "invalid_user": bool(m["invalid"]),
                    "port": int(m["port"]),
                },
            }
        if m := _ACCEPTED.match(msg):
            return {
                **base,
                "actor": {"id": m["user"]},
                "action": "sign_in",
                "ip": ip_or_none(m["ip"]),
                "metadata": {"source": "sshd", "method": m["method"], "port": int(m["port"])},
            }
        if m := _CLOSED.match(msg):
            return {
                **base,
                "actor": {"id": m["user"]},
                "action": "sign_out",
                "metadata": {"source": "sshd"},
            }
        if msg.startswith(_REPEATS_OF_FAILED):
            return None
        return None
    if prog == "sudo" and (m := _SUDO.match(msg)):
        problem = (m["problem"] or "").strip()
        meta = {"source": "sudo", "run_as": m["target"], "command": m["command"][:500]}
        actor = {"id": m["user"]}
        command = {"type": "command", "id": m["command"].split()[0][:200] if m["command"] else "-"}
        if "incorrect password" in problem:
            return {
                **base,
                "actor": actor,
                "action": "sign_in_failed",
                "outcome": "failure",
                "resource": {"type": "sudo", "id": host},
                "metadata": {**meta, "problem": problem},
            }
        return {
            **base,
            "actor": actor,
            "action": "access",
            "outcome": "denied" if problem else "success",
            "resource": command,
            "metadata": {**meta, **({"problem": problem} if problem else {})},
        }
    return None
