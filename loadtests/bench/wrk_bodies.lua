-- wrk script for the benchmark: cycles through request bodies and checks every answer.
--
-- Environment (set by loadtests/bench/wrk.py):
--   WRK_METHOD      GET or POST (default GET)
--   WRK_PATH        request path (default /)
--   WRK_BODY_FILE   a file with one JSON body per line; requests cycle through them
--   WRK_BODY_HEX    "1": each line is `Name: value<TAB>...<TAB><hex of the body>` (binary bodies,
--                   or bodies with headers of their own)
--   WRK_EXPECT      plain text every answer's body must contain (optional)
--
-- wrk itself only counts non-2xx/3xx answers; this script counts every answer that is not a 200
-- with the expected text as "bad", so a fast wrong answer cannot pass as throughput.
-- done() prints one machine-readable line: WRK_RESULT {json}.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local method = os.getenv("WRK_METHOD") or "GET"
  local path = os.getenv("WRK_PATH") or "/"
  local body_file = os.getenv("WRK_BODY_FILE")
  expect = os.getenv("WRK_EXPECT")
  if expect == "" then expect = nil end
  bad = 0
  answers = 0
  prepared = {}
  local hex = os.getenv("WRK_BODY_HEX") == "1"
  if body_file and body_file ~= "" then
    for line in io.lines(body_file) do
      if #line > 0 then
        local headers = { ["Content-Type"] = "application/json" }
        local body = line
        if hex then
          local fields = {}
          for field in string.gmatch(line, "[^\t]+") do fields[#fields + 1] = field end
          body = fields[#fields]
          for i = 1, #fields - 1 do
            local name, value = string.match(fields[i], "^([^:]+):%s*(.*)$")
            headers[name] = value
          end
          body = (string.gsub(body, "%x%x", function(c) return string.char(tonumber(c, 16)) end))
        end
        prepared[#prepared + 1] = wrk.format(method, path, headers, body)
      end
    end
  end
  if #prepared == 0 then
    prepared[1] = wrk.format(method, path)
  end
  -- Threads start at different bodies so connections do not all send the same one.
  cursor = math.random(#prepared) - 1
end

function request()
  cursor = cursor % #prepared + 1
  return prepared[cursor]
end

function response(status, headers, body)
  answers = answers + 1
  if status ~= 200 or (expect and not string.find(body, expect, 1, true)) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total, answers_total = 0, 0
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    answers_total = answers_total + thread:get("answers")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"answers":%d,"bad":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
    '"timeouts":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f}\n',
    summary.requests, summary.duration, answers_total, bad_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
