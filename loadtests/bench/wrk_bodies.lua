-- wrk script for the benchmark: cycles through request bodies and checks every answer.
--
-- Environment (set by loadtests/bench/wrk.py):
--   WRK_METHOD      GET or POST (default GET)
--   WRK_PATH        request path (default /)
--   WRK_BODY_FILE   a file with one JSON body per line; requests cycle through them
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
  local headers = { ["Content-Type"] = "application/json" }
  if body_file and body_file ~= "" then
    for line in io.lines(body_file) do
      if #line > 0 then
        prepared[#prepared + 1] = wrk.format(method, path, headers, line)
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
