-- test_latency.lua: latency measurement and the per-operator lookup table on the tiny space at
-- a small input: statistics, thread restore, table coverage, predict = sum of entries, JSON
-- round trip, the predictor check. No assertion on absolute times (the machine is shared).
local autonad = require 'autonad'
local arch = require 'autonad.arch'
local latency = require 'autonad.latency'
local Supernet = require 'autonad.supernet'
local T = require 'testing'

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$')
local space = require('autonad.space').load(here .. '/fixtures/space_tiny.lua')

local tests = {}
local INPUT = { 32, 32 }

local net_ = nil
local function net()
    net_ = net_ or Supernet.new(space, { in_channels = 1, classes = 2, head = 'seg', seed = 3 })
    return net_
end

local table_ = nil
local function tbl()
    table_ = table_ or latency.build_table(space, { net = net(), input = INPUT, threads = 1,
        warmup = 1, repeats = 3, min_sample_ms = 0.2 })
    return table_
end

local function finite(x) return type(x) == 'number' and x == x and x ~= math.huge and x ~= -math.huge end

function tests.stats_median_min_p90()
    local s = latency.stats({ 3, 1, 10, 2 })
    T.eq(s.median, 2.5)
    T.eq(s.min, 1)
    T.eq(s.p90, 10)
    T.eq(s.n, 4)
    s = latency.stats({ 5, 4, 3, 2, 1, 6, 7, 8, 9, 10, 11 })
    T.eq(s.median, 6)
    T.eq(s.p90, 10) -- nearest rank: ceil(0.9 * 11) = 10
    T.errors(function() latency.stats({}) end, 'no samples')
end

function tests.monotonic_clock_advances()
    local t0 = latency.now_ms()
    local x = 0
    for i = 1, 1e6 do x = x + i end
    local t1 = latency.now_ms()
    T.ok(x > 0 and t1 > t0, 'the clock must advance over a busy loop')
    T.ok(t1 - t0 < 60e3, 'a million additions take well under a minute')
end

function tests.measure_orders_statistics_and_restores_threads()
    autonad.set_num_threads(2)
    local a = arch.sample(space, autonad.rng(5))
    local r = latency.measure(net(), a, { input = INPUT, batch = 2, threads = 1, warmup = 1, repeats = 7 })
    T.eq(autonad.get_num_threads(), 2, 'thread count restored')
    T.ok(r.min > 0 and finite(r.p90), 'positive, finite times')
    T.ok(r.p90 >= r.median and r.median >= r.min, 'p90 >= median >= min')
    T.eq(#r.samples, 7)
    T.eq(r.batch, 2)
    T.eq(r.threads, 1)
    -- per image: the samples are whole-batch times
    local st = latency.stats(r.samples)
    T.near(r.median, st.median / 2, 1e-12)
    T.eq(net().training, false, 'evaluation mode')
    T.eq(r.clock, 'monotonic')
    -- the thread's CPU time: one thread only
    local c = latency.measure(net(), a, { input = INPUT, threads = 1, warmup = 0, repeats = 3, clock = 'thread_cpu' })
    T.ok(c.min > 0 and c.p90 >= c.median and c.median >= c.min)
    T.eq(c.clock, 'thread_cpu')
    T.errors(function() latency.measure(net(), a, { input = INPUT, threads = 2, clock = 'thread_cpu' }) end,
        "the 'thread_cpu' clock times one thread")
    T.errors(function() latency.measure(net(), a, { input = INPUT, threads = 1, clock = 'tsc' }) end,
        "clock must be 'monotonic' or 'thread_cpu'")
    T.eq(autonad.get_num_threads(), 2, 'thread count unchanged by a refused call')
    autonad.set_num_threads(1)
end

-- every configuration of the tiny space, counted from the space independently of the module
local function expected_count()
    local n = 0
    local st = space.stages
    for s = 1, #st do
        n = n + (s == 1 and 1 or #st[s - 1].width) * #st[s].width        -- patch
        n = n + #st[s].width * #st[s].ratio * #st[s].operators           -- blocks
        n = n + #st[s].width                                             -- norm
    end
    local d = space.decoder
    for i = 1, 4 do n = n + #st[4].width * #d.pool_sizes[i] * #d.conv_types end
    n = n + #st[4].width                                                 -- ppm_out
    for s = 1, 3 do n = n + #st[s].width * #d.conv_types + #d.conv_types end -- lateral, out
    return n + 2                                                         -- fuse, head
end

function tests.table_covers_every_configuration()
    local t = tbl()
    local n = 0
    for k, v in pairs(t.entries) do
        n = n + 1
        T.ok(finite(v) and v > 0, 'entry ' .. k .. ' is a positive time')
    end
    T.eq(n, expected_count(), 'entries')
    T.eq(n, 115)
    -- every block configuration of every stage, by name
    for s, st in ipairs(space.stages) do
        for _, c in ipairs(st.width) do
            for _, r in ipairs(st.ratio) do
                for _, op in ipairs(st.operators) do
                    T.ok(t.entries[latency.key.block(s, c, r, op)], 'block entry ' .. latency.key.block(s, c, r, op))
                end
            end
        end
    end
    -- every sampled architecture (and the extremes) is predicted from present entries
    local rng = autonad.rng(9)
    for _ = 1, 200 do T.ok(latency.predict(t, arch.sample(space, rng)) > 0) end
    T.ok(latency.predict(t, arch.largest(space)) > 0 and latency.predict(t, arch.smallest(space)) > 0)
    -- only: a subset of the entries
    local part = latency.build_table(space, { net = net(), input = INPUT, threads = 1, warmup = 0,
        repeats = 1, min_sample_ms = 0, only = { head = true, ['stage2.norm c=64'] = true } })
    local names = {}
    for k in pairs(part.entries) do names[#names + 1] = k end
    table.sort(names)
    T.eq(table.concat(names, ','), 'head,stage2.norm c=64')
    T.eq(part.meta.scale, nil) -- a partial table cannot be calibrated: predict is the plain sum
    T.eq(t.meta.threads, 1)
    T.eq(t.meta.input[1], 32)
    T.eq(t.meta.decoder_width, space.decoder.width)
end

function tests.predict_is_the_sum_of_the_entries()
    local t = tbl()
    local a = {
        depth = { 2, 1, 1, 1 }, width = { 32, 64, 32, 64 },
        ratio = { { 2, 3 }, { 3 }, { 2 }, { 2 } },
        op = { { 'attention', 'mlp' }, { 'conv' }, { 'mlp' }, { 'attention' } },
        decoder = { conv = { '1x1', '3x3', '5x5', 'dil3x3', 'dw3x3', '3x3', '1x1', '5x5', 'dw3x3', 'dil3x3' },
            pool = { 1, 2, 2, 3 } },
    }
    local e = t.entries
    local keys = {
        'stage1.patch cin=1 c=32', 'stage1.block c=32 r=2 op=attention', 'stage1.block c=32 r=3 op=mlp',
        'stage1.norm c=32',
        'stage2.patch cin=32 c=64', 'stage2.block c=64 r=3 op=conv', 'stage2.norm c=64',
        'stage3.patch cin=64 c=32', 'stage3.block c=32 r=2 op=mlp', 'stage3.norm c=32',
        'stage4.patch cin=32 c=64', 'stage4.block c=64 r=2 op=attention', 'stage4.norm c=64',
        'dec.ppm1 c4=64 pool=1 conv=1x1', 'dec.ppm2 c4=64 pool=2 conv=3x3', 'dec.ppm3 c4=64 pool=2 conv=5x5',
        'dec.ppm4 c4=64 pool=3 conv=dil3x3', 'dec.ppm_out c4=64',
        'dec.lateral3 c=32 conv=dw3x3', 'dec.lateral2 c=64 conv=3x3', 'dec.lateral1 c=32 conv=1x1',
        'dec.out1 conv=5x5', 'dec.out2 conv=dw3x3', 'dec.out3 conv=dil3x3', 'dec.fuse', 'head',
    }
    local sum = 0
    for _, k in ipairs(keys) do
        T.ok(e[k], 'entry ' .. k)
        sum = sum + e[k]
    end
    T.near(latency.sum_of_entries(t, a), sum, 1e-12)
    -- predict scales the sum by the calibration measured on random subnets
    T.ok(finite(t.meta.scale) and t.meta.scale > 0.5 and t.meta.scale < 3, 'scale ' .. tostring(t.meta.scale))
    T.near(latency.predict(t, a), t.meta.scale * sum, 1e-12)
    T.eq(#latency.keys(t, a), #keys)
    -- a missing entry is an error naming it
    local saved = e['dec.fuse']
    e['dec.fuse'] = nil
    T.errors(function() latency.predict(t, a) end, "no entry 'dec.fuse'")
    e['dec.fuse'] = saved
end

function tests.json_round_trip()
    local t = tbl()
    local path = os.tmpname()
    latency.save(t, path)
    local u = latency.load(path)
    local n = 0
    for k, v in pairs(t.entries) do
        T.eq(u.entries[k], v, k)
        n = n + 1
    end
    for _ in pairs(u.entries) do n = n - 1 end
    T.eq(n, 0, 'same number of entries')
    T.eq(u.meta.batch, t.meta.batch)
    T.eq(u.meta.in_channels, 1)
    T.eq(table.concat(u.meta.slots, ','), table.concat(space.decoder.slots, ','))
    local a = arch.sample(space, autonad.rng(4))
    T.eq(latency.predict(u, a), latency.predict(t, a))
    local f = io.open(path, 'w')
    f:write('{"version": 1, "meta": {}, "entries": {"head": "fast"}}')
    f:close()
    T.errors(function() latency.load(path) end, "entry 'head' is not a number")
    f = io.open(path, 'w')
    f:write('[1, 2]')
    f:close()
    T.errors(function() latency.load(path) end, 'is not a latency table')
    os.remove(path)
end

function tests.check_reports_finite_errors()
    local t = tbl()
    local lines = {}
    local r = latency.check(space, t, { net = net(), count = 3, seed = 2, warmup = 1, repeats = 3,
        log = function(l) lines[#lines + 1] = l end })
    T.eq(r.count, 3)
    T.eq(#r.rows, 3)
    T.ok(finite(r.median) and finite(r.worst) and finite(r.bias), 'finite errors')
    T.ok(r.worst >= r.median and r.median >= 0)
    for _, row in ipairs(r.rows) do
        T.ok(row.measured > 0 and row.predicted > 0)
        T.near(row.error, (row.predicted - row.measured) / row.measured, 1e-12)
        arch.validate(space, row.arch)
    end
    T.eq(#lines, 6, 'title, header, 3 rows, summary')
    T.ok(lines[#lines]:find('median', 1, true), 'summary line')
    -- the same seed draws the same subnets
    local again = latency.check(space, t, { net = net(), count = 3, seed = 2, warmup = 0, repeats = 1,
        log = function() end })
    for i = 1, 3 do T.eq(arch.key(again.rows[i].arch), arch.key(r.rows[i].arch)) end
    -- a table for another decoder width is refused
    local other = arch.copy(space)
    other.decoder.width = 32
    T.errors(function() latency.check(other, t, { count = 1 }) end, 'decoder width 16')
end

return tests
