-- wrk script for bench/commerce_reservations.py: POST /api/v1/reservations,
-- one unit of one product, each request with the next customer's token.
-- args: tokens file, product id
local tokens, body, i = {}, nil, 0

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  body = '{"product_id": "' .. args[2] .. '", "quantity": 1}'
  i = math.random(#tokens)
end

function request()
  i = i % #tokens + 1
  return wrk.format("POST", "/api/v1/reservations",
                    {["Authorization"] = "Bearer " .. tokens[i],
                     ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format("WRK requests=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
