"""Answers recorded from a real Kolibri 0.19.5 (see tests/realkolibri.py), verbatim."""

FACILITY = "dc8957c93aac9f87f50cc1a0db1cde33"

SESSION = (
    '{"username":"kadmin","full_name":"kadmin","user_id":"21d07b24e4838047876bb50a522556fa",'
    '"kind":["superuser","admin"],"can_manage_content":true,"facility_id":"dc8957c93aac9f87f50cc1a0db1cde33",'
    '"full_facility_import":true,"id":"current","server_time":"2026-12-06T23:41:51.849260Z","app_context":false}'
)
ANONYMOUS_SESSION = (
    '{"username":"","full_name":"","user_id":null,"facility_id":"dc8957c93aac9f87f50cc1a0db1cde33",'
    '"kind":["anonymous"],"full_facility_import":true,"id":"current","server_time":"2026-12-06T23:41:51.911000Z",'
    '"app_context":false}'
)
USERS_PAGE = (
    '{"page":1,"count":2,"total_pages":2,"results":[{"id":"21d07b24e4838047876bb50a522556fa","username":"kadmin",'
    '"full_name":"kadmin","facility":"dc8957c93aac9f87f50cc1a0db1cde33","id_number":"","gender":"DEFERRED",'
    '"birth_year":"DEFERRED","extra_demographics":null,"date_joined":"2026-12-06T23:41:39.166192Z",'
    '"picture_password":null,"is_superuser":true,"roles":[{"collection":"dc8957c93aac9f87f50cc1a0db1cde33",'
    '"kind":"admin","id":"1de4cddc9168ec6fb04fc6f236f4942a"}]}]}'
)
ANONYMOUS_USERS_PAGE = '{"page":1,"count":0,"total_pages":1,"results":[]}'
CREATED_USER = (
    '{"id":"629419e11b7e356dd17c7db03725cf4c","username":"ada_1","full_name":"Ada L",'
    '"facility":"dc8957c93aac9f87f50cc1a0db1cde33","id_number":"abc","gender":"","birth_year":"",'
    '"extra_demographics":null,"date_joined":"2026-12-06T23:41:54.643627Z","picture_password":null,'
    '"is_superuser":false,"roles":[]}'
)
USERNAME_TAKEN = (
    '[{"id":"USERNAME_ALREADY_EXISTS","metadata":{"field":"non_field_errors",'
    '"message":"An account with that username already exists."}}]'
)
USERNAME_INVALID = (
    '[{"id":"INVALID","metadata":{"field":"username","message":"Enter a valid username. This value can contain only'
    ' letters, numbers, and underscores."}}]'
)
NOT_FOUND = '[{"id":"NOT_FOUND","metadata":{"view":"Facility User List"}}]'
CLASSROOMS = (
    '[{"id":"14a0fa3ab7969eb9c35d9134a29d41c8","name":"Class 1","parent":"dc8957c93aac9f87f50cc1a0db1cde33",'
    '"learner_count":0,"coaches":[]}]'
)
MEMBERSHIPS = (
    '[{"id":"c610f7e70e25dc9528f82b2df2c35800","collection":"14a0fa3ab7969eb9c35d9134a29d41c8",'
    '"user":"629419e11b7e356dd17c7db03725cf4c"}]'
)
DUPLICATE_MEMBERSHIP_500 = (
    '\n<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n'
    '  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n'
)
TASK_QUEUED = (
    '{"status":"QUEUED","type":"kolibri.core.logger.tasks.exportsummarylogcsv","exception":null,"traceback":"",'
    '"percentage":0,"id":"99e4bfdc7fa74ab5adbd1f9bb0d834be","cancellable":false,"clearable":false,'
    '"facility_id":"dc8957c93aac9f87f50cc1a0db1cde33","args":["dc8957c93aac9f87f50cc1a0db1cde33"],'
    '"kwargs":{"facility":"dc8957c93aac9f87f50cc1a0db1cde33","start_date":"2000-01-01","end_date":"2026-12-08",'
    '"locale":"en"},"extra_metadata":{"started_by":"21d07b24e4838047876bb50a522556fa",'
    '"started_by_username":"kadmin"},"scheduled_datetime":"2026-12-06T23:42:11.483888+00:00","repeat":0,'
    '"repeat_interval":0,"retry_interval":null,"max_retries":null}'
)
SUMMARY_CSV = (
    "\ufeffFacility name,Username,User type,Channel id,Channel name,Content id,Content title,Time of first"
    " interaction,Time of last interaction,Time of completion,Time Spent (sec),Progress (0-1),Content kind\r\n"
    "Unit A,ada_1,Learner,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,,2026-12-06"
    " 22:42:10.051346+00:00,2026-12-06 23:42:10.051346+00:00,2026-12-06 23:42:10.051346+00:00,321.0,1.0000,video\r\n"
    "Unit A,ada_1,Learner,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,,cccccccccccccccccccccccccccccccc,,2026-12-06"
    " 22:42:10.051346+00:00,2026-12-06 23:42:10.051346+00:00,,12.5,0.2500,exercise\r\n"
)
# GET /api/lessons/lesson/?collection=<classroom>: an inactive draft and an active lesson of two resources.
LESSONS = (
    '[{"id":"78bd3a768e16f9a055736312e7c02a40","title":"Draft","description":"","resources":[{"content_id":"dd'
    'dddddddddddddddddddddddddddddd","channel_id":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","contentnode_id":"ddddddd'
    'ddddddddddddddddddddddddd"}],"collection":"1b971e13930837a309868ad23d8ab815","created_by":"ee779867c917ca'
    '4869ea9f8782d7c008","date_created":"2026-12-07T02:38:48.588696Z","active":false,"classroom":{"id":"1b971e'
    '13930837a309868ad23d8ab815","name":"Class 1","parent":"e9605a5068485ff293ed70f427d16718"},"assignments":['
    '"1b971e13930837a309868ad23d8ab815"],"learner_ids":[]},{"id":"edbadebec357902301f5bd5693d7ebfa","title":"F'
    'ractions","description":"","resources":[{"content_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","channel_id":"bb'
    'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","contentnode_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},{"content_id":"ccccc'
    'ccccccccccccccccccccccccccc","channel_id":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","contentnode_id":"cccccccccc'
    'cccccccccccccccccccccc"}],"collection":"1b971e13930837a309868ad23d8ab815","created_by":"ee779867c917ca486'
    '9ea9f8782d7c008","date_created":"2026-12-07T02:38:48.513871Z","active":true,"classroom":{"id":"1b971e1393'
    '0837a309868ad23d8ab815","name":"Class 1","parent":"e9605a5068485ff293ed70f427d16718"},"assignments":["1b9'
    '71e13930837a309868ad23d8ab815"],"learner_ids":[]}]'
)
