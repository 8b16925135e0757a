-- The request given on the command line (its URL and -H headers), each connection pausing the number of
-- milliseconds given as the argument after `--` before each request: a steady load, not a flood.
local pause = 0

function init(args)
  pause = tonumber(args[1])
end

function delay()
  return pause
end
