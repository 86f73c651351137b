"""In-memory state of the fake Moodle and its web service functions (lms-contracts.md §4).

Each function takes the decoded parameters (PHP bracket names already folded into dicts and lists) and
returns what Moodle would, or raises `MoodleError` with Moodle's exception class, error code and message.
"""

from __future__ import annotations

import bisect
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

VALID_USERNAME = re.compile(r"^[a-z0-9_.@-]+$")
VALID_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ROLES = {5: {"roleid": 5, "name": "", "shortname": "student", "sortorder": 0},
         3: {"roleid": 3, "name": "", "shortname": "editingteacher", "sortorder": 0}}
INTERNAL_AUTH = {"manual", "email"}


class MoodleError(Exception):
    """What Moodle's REST server turns into `{"exception", "errorcode", "message"}` with HTTP 200."""

    def __init__(self, exception: str, errorcode: str, message: str, debuginfo: str | None = None) -> None:
        super().__init__(message)
        self.exception, self.errorcode, self.message, self.debuginfo = exception, errorcode, message, debuginfo

    def body(self, debug: bool = True) -> dict[str, Any]:
        """The JSON error body (debuginfo only when the site is in debug mode)."""
        out: dict[str, Any] = {"exception": self.exception, "errorcode": self.errorcode, "message": self.message}
        if self.debuginfo and debug:
            out["debuginfo"] = self.debuginfo
        return out


def invalid(debug: str) -> MoodleError:
    """invalid_parameter_exception as Moodle raises it: the reason is only in debuginfo (shown in debug mode)."""
    return MoodleError("invalid_parameter_exception", "invalidparameter", "Invalid parameter value detected", debug)


def missing_record(table: str) -> MoodleError:
    """dml_missing_record_exception."""
    return MoodleError("dml_missing_record_exception", "invalidrecord",
                       f"Can't find data record in database table {table}.")


def need(params: dict[str, Any], name: str) -> Any:
    """A required parameter, or Moodle's complaint about it."""
    if name not in params or params[name] in ("", None):
        raise invalid(f"Missing required key in single structure: {name}")
    return params[name]


def as_int(value: Any, name: str) -> int:
    """PARAM_INT validation."""
    text = str(value)
    if not text.lstrip("-").isdigit():
        raise invalid(f"Invalid external api parameter: the value is \"{text}\", the server was expecting \"int\" type")
    return int(text)


def items(value: Any) -> list[Any]:
    """A PHP array decoded from brackets: {"0": a, "1": b} or a list → list in index order."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=lambda k: int(k) if str(k).isdigit() else 0)]
    return []


@dataclass
class MoodleState:
    """Users, courses, enrolments, completions, grades; plus write logs tests assert exactly-once against."""

    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    courses: dict[int, dict[str, Any]] = field(default_factory=dict)
    enrolments: dict[int, dict[int, int]] = field(default_factory=dict)  # course → {user: roleid}
    completions: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    grades: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    user_creates: Counter[str] = field(default_factory=Counter)  # by idnumber: above 1 is a duplicate
    enrollment_creates: Counter[tuple[int, int]] = field(default_factory=Counter)
    enrollment_deletes: Counter[tuple[int, int]] = field(default_factory=Counter)
    user_updates: Counter[int] = field(default_factory=Counter)
    rejected_writes: list[dict[str, Any]] = field(default_factory=list)
    allow_same_email: bool = False
    _next_user: int = 2
    _next_course: int = 1
    _next_item: int = 1000
    _by_username: dict[str, int] = field(default_factory=dict)
    _sorted_members: dict[int, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.courses[1] = {"id": 1, "shortname": "site", "fullname": "Facility Moodle",
                           "displayname": "Facility Moodle", "categoryid": 0, "format": "site", "startdate": 0,
                           "enddate": 0, "visible": 1,
                           "enablecompletion": 0, "summary": "", "summaryformat": 1}
        self.add_user("admin", "Admin", "User", email="admin@example.org")  # id 2, like a fresh site

    # ---- seeding -------------------------------------------------------------------------------
    def add_user(self, username: str, firstname: str, lastname: str, *, email: str | None = None,
                 idnumber: str = "", auth: str = "manual", suspended: int = 0) -> dict[str, Any]:
        """A site user (not enrolled anywhere yet)."""
        user_id = self._next_user
        self._next_user += 1
        user = {
            "id": user_id, "username": username, "auth": auth, "suspended": suspended, "confirmed": True,
            "firstname": firstname, "lastname": lastname, "fullname": f"{firstname} {lastname}",
            "email": email or f"{username}@example.org", "idnumber": idnumber, "lang": "en",
            "firstaccess": 0, "lastaccess": 0, "department": "", "institution": "", "city": "", "country": "",
            "description": "", "descriptionformat": 1, "timezone": "99", "mailformat": 1,
            "profileimageurlsmall": "https://moodle.invalid/theme/image.php/boost/core/1/u/f2",
            "profileimageurl": "https://moodle.invalid/theme/image.php/boost/core/1/u/f1",
        }
        self.users[user_id] = user
        self._by_username[username] = user_id
        return user

    def add_course(self, fullname: str, *, shortname: str | None = None, enablecompletion: int = 1,
                   visible: int = 1, startdate: int = 1_700_000_000) -> dict[str, Any]:
        """A course in category 1."""
        self._next_course += 1
        course_id = self._next_course
        course = {
            "id": course_id, "shortname": shortname or f"C{course_id}", "categoryid": 1, "categorysortorder": 10001,
            "fullname": fullname, "displayname": fullname, "idnumber": "", "summary": "", "summaryformat": 1,
            "format": "topics", "showgrades": 1, "newsitems": 5, "startdate": startdate, "enddate": 0,
            "numsections": 4, "maxbytes": 0, "showreports": 0, "visible": visible, "groupmode": 0,
            "groupmodeforce": 0, "defaultgroupingid": 0, "timecreated": startdate, "timemodified": startdate,
            "enablecompletion": enablecompletion, "completionnotify": 0, "lang": "", "forcetheme": "",
            "courseformatoptions": [{"name": "hiddensections", "value": 0}],
        }
        self.courses[course_id] = course
        return course

    def enrol(self, course_id: int, user_id: int, roleid: int = 5) -> bool:
        """Enrol (or change the role of) a user; True when the enrolment is new."""
        members = self.enrolments.setdefault(course_id, {})
        new = user_id not in members
        members[user_id] = roleid
        if new:
            bisect.insort(self._sorted_members.setdefault(course_id, []), user_id)
        return new

    def unenrol(self, course_id: int, user_id: int) -> bool:
        """Remove an enrolment; True when there was one."""
        members = self.enrolments.get(course_id, {})
        if user_id not in members:
            return False
        del members[user_id]
        self._sorted_members[course_id].remove(user_id)
        return True

    def complete(self, course_id: int, user_id: int, cmid: int, *, modname: str = "assign", state: int = 1,
                 at: int | None = None) -> None:
        """Record an activity completion (state 1 complete, 2 pass, 3 fail)."""
        self.completions.setdefault((course_id, user_id), []).append({
            "cmid": cmid, "modname": modname, "instance": cmid * 10, "state": state,
            "timecompleted": at or int(time.time()), "tracking": 2, "overrideby": None, "valueused": False,
            "hascompletion": True, "isautomatic": True, "istrackeduser": True, "uservisible": True, "details": [],
        })

    def grade(self, course_id: int, user_id: int, itemname: str, score: float | None, *, itemtype: str = "mod",
              at: int | None = None) -> None:
        """Record a grade item value for a learner."""
        self._next_item += 1
        self.grades.setdefault((course_id, user_id), []).append({
            "id": self._next_item, "itemname": itemname, "itemtype": itemtype, "itemmodule": "assign",
            "iteminstance": 1, "itemnumber": 0, "idnumber": "", "categoryid": 1, "outcomeid": None, "scaleid": None,
            "locked": False, "cmid": 1, "graderaw": score, "gradedatesubmitted": at, "gradedategraded": at,
            "gradehiddenbydate": False, "gradeneedsupdate": False, "gradeishidden": False, "gradeislocked": False,
            "gradeisoverridden": False, "gradeformatted": "" if score is None else f"{score:.2f}",
            "grademin": 0, "grademax": 100, "rangeformatted": "0&ndash;100", "percentageformatted": "-",
            "feedback": "", "feedbackformat": 0,
        })

    def find_user(self, field_name: str, value: str) -> list[dict[str, Any]]:
        """Users whose field equals value (idnumber is not unique in Moodle: there may be several)."""
        if field_name == "username":
            user_id = self._by_username.get(value)
            return [self.users[user_id]] if user_id is not None else []
        if field_name == "id":
            return [self.users[int(value)]] if value.isdigit() and int(value) in self.users else []
        return [u for u in self.users.values() if str(u.get(field_name)) == value]

    def members(self, course_id: int) -> list[int]:
        """Enrolled user ids of a course in id order."""
        return self._sorted_members.get(course_id, [])

    # ---- web service functions -----------------------------------------------------------------
    def site_info(self, params: dict[str, Any]) -> Any:
        """core_webservice_get_site_info."""
        return {"sitename": "Facility Moodle", "username": "admin", "firstname": "Admin", "lastname": "User",
                "fullname": "Admin User", "lang": "en", "userid": 2, "siteurl": "https://moodle.invalid",
                "userpictureurl": "", "functions": [{"name": n, "version": "2024042200"} for n in FUNCTIONS],
                "downloadfiles": 1, "uploadfiles": 1, "release": "4.4 (Build: 20240422)", "version": "2024042200",
                "mobilecssurl": "", "advancedfeatures": [], "usercanmanageownfiles": True, "userquota": 0,
                "usermaxuploadfilesize": -1, "userhomepage": 1, "siteid": 1, "sitecalendartype": "gregorian"}

    def get_courses(self, params: dict[str, Any]) -> Any:
        """core_course_get_courses: every course (site course 1 included) or options[ids]."""
        ids = [as_int(i, "ids") for i in items((params.get("options") or {}).get("ids"))]
        chosen = [self.courses[i] for i in ids if i in self.courses] if ids else list(self.courses.values())
        return [dict(c) for c in chosen]

    def enrolled_users(self, params: dict[str, Any], *, ignore_limitfrom: bool = False) -> Any:
        """core_enrol_get_enrolled_users with limitfrom/limitnumber/userfields options."""
        course_id = as_int(need(params, "courseid"), "courseid")
        if course_id not in self.courses:
            raise missing_record("course")
        options = {str(o.get("name")): o.get("value") for o in items(params.get("options")) if isinstance(o, dict)}
        start = 0 if ignore_limitfrom else as_int(options.get("limitfrom", 0), "limitfrom")
        number = as_int(options.get("limitnumber", 0), "limitnumber")
        wanted = [f.strip() for f in str(options.get("userfields", "")).split(",") if f.strip()]
        ids = self.members(course_id)
        chosen = ids[start:start + number] if number else ids[start:]
        out = []
        for user_id in chosen:
            user = self.users[user_id]
            detail = {k: user[k] for k in ("id", "username", "firstname", "lastname", "fullname", "email",
                                            "idnumber", "firstaccess", "lastaccess", "description",
                                            "descriptionformat", "city", "country", "profileimageurlsmall",
                                            "profileimageurl")}
            detail["suspended"] = user["suspended"]
            detail["lastcourseaccess"] = 0
            detail["roles"] = [ROLES[self.enrolments[course_id][user_id]]]
            detail["enrolledcourses"] = [{"id": course_id, "fullname": self.courses[course_id]["fullname"],
                                          "shortname": self.courses[course_id]["shortname"]}]
            if wanted:
                detail = {k: v for k, v in detail.items() if k in wanted or k in ("id", "fullname")}
            out.append(detail)
        return out

    def users_by_field(self, params: dict[str, Any]) -> Any:
        """core_user_get_users_by_field: field in id, idnumber, username, email."""
        field_name = str(need(params, "field"))
        if field_name not in ("id", "idnumber", "username", "email"):
            raise invalid(f"Invalid field: {field_name}")
        return [dict(u) for v in items(params.get("values")) for u in self.find_user(field_name, str(v))]

    def create_users(self, params: dict[str, Any]) -> Any:
        """core_user_create_users: all-or-nothing, validated like user/externallib.php."""
        batch = items(need(params, "users"))
        seen: set[str] = set()
        for user in batch:
            username = str(user.get("username", ""))
            for key in ("username", "firstname", "lastname", "email"):
                need(user, key)
            if username != username.lower():
                raise invalid("The username must be in lower case")
            if not VALID_USERNAME.match(username):
                raise invalid("The username can only contain alphanumeric lowercase characters (letters and "
                              "numbers), underscore (_), hyphen (-), period (.) or at symbol (@).")
            if username in self._by_username or username in seen:
                raise invalid(f"Username already exists: {username}")
            seen.add(username)
            if user.get("auth", "manual") in INTERNAL_AUTH and not user.get("password") and not user.get(
                    "createpassword"):
                raise invalid("Invalid password: you must provide a password, or set createpassword.")
            if not VALID_EMAIL.match(str(user["email"])):
                raise invalid(f"Email address is invalid: {user['email']}")
            if not self.allow_same_email and self.find_user("email", str(user["email"])):
                raise invalid(f"Email address already exists: {user['email']}")
        created = []
        for user in batch:
            record = self.add_user(str(user["username"]), str(user["firstname"]), str(user["lastname"]),
                                   email=str(user["email"]), idnumber=str(user.get("idnumber", "")),
                                   auth=str(user.get("auth", "manual")), suspended=int(user.get("suspended", 0)))
            self.user_creates[record["idnumber"] or record["username"]] += 1
            created.append({"id": record["id"], "username": record["username"]})
        return created

    def update_users(self, params: dict[str, Any]) -> Any:
        """core_user_update_users."""
        for change in items(need(params, "users")):
            user_id = as_int(need(change, "id"), "id")
            user = self.users.get(user_id)
            if user is None:
                raise missing_record("user")
            for key in ("firstname", "lastname", "email", "idnumber", "suspended"):
                if key in change:
                    user[key] = int(change[key]) if key == "suspended" else str(change[key])
            user["fullname"] = f"{user['firstname']} {user['lastname']}"
            self.user_updates[user_id] += 1
        return {"warnings": []}

    def users_courses(self, params: dict[str, Any]) -> Any:
        """core_enrol_get_users_courses."""
        user_id = as_int(need(params, "userid"), "userid")
        if user_id not in self.users:
            raise missing_record("user")
        return [{"id": c["id"], "shortname": c["shortname"], "fullname": c["fullname"], "displayname": c["fullname"],
                 "enrolledusercount": len(self.enrolments.get(c["id"], {})), "idnumber": c["idnumber"],
                 "visible": c["visible"], "format": c["format"], "enablecompletion": bool(c["enablecompletion"]),
                 "progress": None, "completed": False, "startdate": c["startdate"], "enddate": c["enddate"],
                 "lastaccess": None, "isfavourite": False, "hidden": False}
                for c in self.courses.values() if user_id in self.enrolments.get(c["id"], {})]

    def manual_enrol(self, params: dict[str, Any]) -> Any:
        """enrol_manual_enrol_users: returns null; re-enrolling an enrolled user changes nothing."""
        for enrolment in items(need(params, "enrolments")):
            course_id = as_int(need(enrolment, "courseid"), "courseid")
            user_id = as_int(need(enrolment, "userid"), "userid")
            roleid = as_int(need(enrolment, "roleid"), "roleid")
            if course_id not in self.courses or course_id == 1:
                raise MoodleError("moodle_exception", "wsnoinstance",
                                  "Manual enrolment plugin instance doesn't exist or is disabled for the course "
                                  f"(id = {course_id})")
            if user_id not in self.users:
                raise missing_record("user")
            if roleid not in ROLES:
                raise MoodleError("moodle_exception", "wscannotenrol",
                                  f"Role id {roleid} cannot be assigned by the manual enrolment plugin")
            if self.enrol(course_id, user_id, roleid):
                self.enrollment_creates[(course_id, user_id)] += 1
        return None

    def manual_unenrol(self, params: dict[str, Any]) -> Any:
        """enrol_manual_unenrol_users."""
        for enrolment in items(need(params, "enrolments")):
            course_id = as_int(need(enrolment, "courseid"), "courseid")
            user_id = as_int(need(enrolment, "userid"), "userid")
            if self.unenrol(course_id, user_id):
                self.enrollment_deletes[(course_id, user_id)] += 1
        return None

    def completion_status(self, params: dict[str, Any]) -> Any:
        """core_completion_get_activities_completion_status."""
        course_id = as_int(need(params, "courseid"), "courseid")
        user_id = as_int(need(params, "userid"), "userid")
        course = self.courses.get(course_id)
        if course is None:
            raise missing_record("course")
        if not course["enablecompletion"]:
            raise MoodleError("moodle_exception", "completionnotenabled", "Completion is not enabled")
        if user_id not in self.enrolments.get(course_id, {}):
            raise MoodleError("require_login_exception", "requireloginerror",
                              "Course or activity not accessible. (Not enrolled)")
        return {"statuses": [dict(s) for s in self.completions.get((course_id, user_id), [])], "warnings": []}

    def grade_items(self, params: dict[str, Any]) -> Any:
        """gradereport_user_get_grade_items for one learner (or all when userid is 0)."""
        course_id = as_int(need(params, "courseid"), "courseid")
        if course_id not in self.courses:
            raise missing_record("course")
        user_id = as_int(params.get("userid", 0), "userid")
        users = [user_id] if user_id else self.members(course_id)
        out = []
        for uid in users:
            user = self.users.get(uid)
            if user is None:
                raise missing_record("user")
            out.append({"courseid": course_id, "courseidnumber": "", "userid": uid, "userfullname": user["fullname"],
                        "useridnumber": user["idnumber"], "maxdepth": 2,
                        "gradeitems": [dict(g) for g in self.grades.get((course_id, uid), [])]})
        return {"usergrades": out, "warnings": []}


FUNCTIONS = {
    "core_webservice_get_site_info": MoodleState.site_info,
    "core_course_get_courses": MoodleState.get_courses,
    "core_enrol_get_enrolled_users": MoodleState.enrolled_users,
    "core_user_get_users_by_field": MoodleState.users_by_field,
    "core_user_create_users": MoodleState.create_users,
    "core_user_update_users": MoodleState.update_users,
    "core_enrol_get_users_courses": MoodleState.users_courses,
    "enrol_manual_enrol_users": MoodleState.manual_enrol,
    "enrol_manual_unenrol_users": MoodleState.manual_unenrol,
    "core_completion_get_activities_completion_status": MoodleState.completion_status,
    "gradereport_user_get_grade_items": MoodleState.grade_items,
}
WRITES = {"core_user_create_users", "core_user_update_users", "enrol_manual_enrol_users", "enrol_manual_unenrol_users"}
