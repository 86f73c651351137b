"""A throw-away OpenLDAP slapd on free loopback ports (plain + LDAPS, StartTLS) with a small tree."""

import base64
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.auth.pki import LocalPki

SUFFIX = "dc=facility,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret-9"
SERVICE_DN = f"cn=appliance,ou=services,{SUFFIX}"
SERVICE_PW = "service-secret-9"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"


@dataclass(frozen=True)
class DirUser:
    """One person in the test tree."""

    uid: str
    password: str
    given: str
    sn: str
    mail: str
    employee_number: str

    @property
    def dn(self) -> str:
        """Distinguished name under ou=people."""
        return f"uid={self.uid},{PEOPLE}"


USERS = [
    DirUser("alice", "alice-pass-1", "Alice", "Archer", "alice@facility.test", "A1001"),
    DirUser("bob", "bob-pass-1", "Bob", "Baker", "bob@facility.test", "B2002"),
    DirUser("carol", "carol-pass-1", "Carol", "Cole", "carol@facility.test", "C3003"),
    DirUser("dave", "dave-pass-1", "Dave", "Dunn", "dave@facility.test", "D4004"),
]
# group cn → member uids; memberOf is filled because these are added with ldapadd after start.
GROUP_MEMBERS = {
    "learners": ["alice", "dave"],
    "staff": ["bob"],
    "admins": ["carol"],
    "unit-b": ["alice", "bob"],
}


def group_dn(cn: str) -> str:
    """DN of a test group."""
    return f"cn={cn},{GROUPS}"


def _ssha(password: str) -> str:
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - slapd's {SSHA} scheme
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Slapd:
    """A running slapd; stop() ends it."""

    workdir: Path
    port: int
    ldaps_port: int
    pki: LocalPki
    pid: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Plain (StartTLS-capable) URL."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        """LDAPS URL."""
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def start(self) -> None:
        """Write the config and base tree, start slapd, then add the groups so memberOf is filled."""
        db = self.workdir / "db"
        db.mkdir(parents=True)
        conf = self.workdir / "slapd.conf"
        schema = "\n".join(f"include /etc/ldap/schema/{s}.schema" for s in ("core", "cosine", "inetorgperson", "nis"))
        conf.write_text(f"""{schema}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {self.workdir}/slapd.pid
TLSCACertificateFile {self.pki.ca_cert}
TLSCertificateFile {self.pki.server_cert}
TLSCertificateKeyFile {self.pki.server_key}
database mdb
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {db}
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
""")
        base = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Facility\ndc: facility\n"]
        for ou in ("people", "groups", "services"):
            base.append(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n")
        base.append(
            f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
            f"cn: appliance\nuserPassword: {_ssha(SERVICE_PW)}\n"
        )
        for u in USERS:
            base.append(
                f"dn: {u.dn}\nobjectClass: inetOrgPerson\nuid: {u.uid}\ncn: {u.given} {u.sn}\n"
                f"givenName: {u.given}\nsn: {u.sn}\nmail: {u.mail}\nemployeeNumber: {u.employee_number}\n"
                f"userPassword: {_ssha(u.password)}\n"
            )
        (self.workdir / "base.ldif").write_text("\n".join(base))
        subprocess.run(
            ["slapadd", "-f", str(conf), "-l", str(self.workdir / "base.ldif")],
            check=True,
            capture_output=True,
            timeout=30,
        )
        subprocess.run(
            ["slapd", "-f", str(conf), "-h", f"{self.url}/ {self.ldaps_url}/"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.pid = int(self._wait_for_pid())
        self._wait_listening()
        groups = []
        for cn, members in GROUP_MEMBERS.items():
            lines = [f"dn: {group_dn(cn)}", "objectClass: groupOfNames", f"cn: {cn}"]
            lines += [f"member: uid={m},{PEOPLE}" for m in members]
            groups.append("\n".join(lines) + "\n")
        self.ldapadd("\n".join(groups))

    def ldapadd(self, ldif: str) -> None:
        """Add entries as the root DN through the running server."""
        subprocess.run(
            ["ldapadd", "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PW],
            input=ldif.encode(),
            check=True,
            capture_output=True,
            timeout=30,
        )

    def _wait_for_pid(self) -> str:
        pidfile = self.workdir / "slapd.pid"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if pidfile.exists() and pidfile.read_text().strip():
                return pidfile.read_text().strip()
            time.sleep(0.05)
        raise RuntimeError("slapd did not write its pid file")

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd is not listening")

    def stop(self) -> None:
        """Stop slapd and wait for it to go."""
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = 0
