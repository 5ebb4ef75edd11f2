-- 1 % of requests ask the `flaky` app to kill its worker; every thread counts how many it sent.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    crashes = 0
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end

function request()
    if math.random() < 0.01 then
        crashes = crashes + 1
        return wrk.format(nil, "/?crash=1")
    end
    return wrk.format(nil, "/")
end

function done(summary, latency, requests)
    local total = 0
    for _, thread in ipairs(threads) do
        total = total + thread:get("crashes")
    end
    io.write(string.format("crash requests sent: %d\n", total))
end
