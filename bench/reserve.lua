-- wrk script for bench/commerce_reservations.py: POST /api/v1/reservations,
-- one unit of a product, each request with the next customer's token and the
-- next of the products (one hot product, or a spread).
-- args: tokens file, product ids separated by commas
local tokens, bodies, i, j = {}, {}, 0, 0

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  for id in string.gmatch(args[2], "[^,]+") do
    bodies[#bodies + 1] = '{"product_id": "' .. id .. '", "quantity": 1}'
  end
  i, j = math.random(#tokens), math.random(#bodies)
end

function request()
  i, j = i % #tokens + 1, j % #bodies + 1
  return wrk.format("POST", "/api/v1/reservations",
                    {["Authorization"] = "Bearer " .. tokens[i],
                     ["Content-Type"] = "application/json"}, bodies[j])
end

function done(summary, latency, requests)
  io.write(string.format("WRK requests=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
