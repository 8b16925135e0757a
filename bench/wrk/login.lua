-- POST /auth/login (body transport, correct password) over the users given as arguments, in turn.
-- Arguments after `--`: window start and end (CLOCK_MONOTONIC seconds, the clock of Python's
-- time.monotonic()), the password, then the e-mail addresses. 2xx answers are counted in total (ok) and
-- when they arrive inside the window (ok_in_window): the login rate of the window alone.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) / 1e9
end

local bodies, turn, window_start, window_end = {}, 0, 0, 0
ok, ok_in_window = 0, 0

function init(args)
  window_start, window_end = tonumber(args[1]), tonumber(args[2])
  local password = args[3]
  local headers = { ["Content-Type"] = "application/json" }
  for i = 4, #args do
    local body = string.format('{"email": "%s", "password": "%s", "transport": "body"}', args[i], password)
    table.insert(bodies, wrk.format("POST", "/auth/login", headers, body))
  end
end

function request()
  turn = turn % #bodies + 1
  return bodies[turn]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    local t = now()
    if t >= window_start and t <= window_end then
      ok_in_window = ok_in_window + 1
    end
  end
end
