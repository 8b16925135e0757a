-- Requests over many resources: the paths in a file (one a line), each request the next one, each wrk
-- thread starting at a random place in the list. Arguments after `--`: the file, the method, then the
-- bodies (sent in turn with a POST; none for a GET). Headers come from wrk's -H (Authorization,
-- Content-Type).
local paths, bodies, method, turn = {}, {}, "GET", 0

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      table.insert(paths, line)
    end
  end
  method = args[2]
  for i = 3, #args do
    table.insert(bodies, args[i])
  end
  -- Every thread has its own Lua state, all seeded alike: the address of a new table differs.
  math.randomseed(os.time() + (tonumber(string.match(tostring({}), "0x(%x+)") or "0", 16) % 1000003))
  turn = math.random(#paths)
end

function request()
  turn = turn % #paths + 1
  local body = nil
  if #bodies > 0 then
    body = bodies[turn % #bodies + 1]
  end
  return wrk.format(method, paths[turn], nil, body)
end
