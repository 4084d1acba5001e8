-- autonad.latency: a subnet's measured CPU inference latency, and a per-operator lookup table
-- that predicts it from the architecture alone (the search's latency term, bench/latency_check).
--   local r = latency.measure(net, a, { input = {128, 128}, threads = 1 })  -- r.median ms/image
--   local t = latency.build_table(space, { input = {128, 128}, threads = 1 })
--   latency.predict(t, a); latency.save(t, 'lat.json'); latency.check(space, t, { count = 50 })
--
-- How the table is measured. Each entry is timed on the real supernet modules, not on small
-- stand-alone nets: for every configuration the space can produce, an architecture holding it
-- (the smallest subnet with that one gene changed) is selected and run forward once, which
-- leaves every module's input buffer filled at the true shapes; then the module's own forward
-- (Stage.patch + patch_norm, a Block, Stage.norm, the MFAM pieces) is called on those buffers,
-- with warm-up runs, enough calls per sample to last min_sample_ms, and the median of the
-- samples. The modules time the same code, weight views (strided slices) and workspace the
-- subnet runs, so nothing has to be re-implemented and kept in step: the decoder entries call
-- the named steps Mfam:forward and SegHead:forward are made of (ppm_branch, ppm_merge,
-- lateral_step, top_down_step, fuse_step, upsample_step), glue operations included.
--
-- Entries (ms per image), by key:
--   stage{s}.patch cin=I c=C        patch conv + LayerNorm, input width I (image or stage s-1)
--   stage{s}.block c=C r=R op=O     one block (all blocks of a stage see the same token grid)
--   stage{s}.norm c=C               the stage's closing LayerNorm
--   dec.ppm{i} c4=C pool=P conv=T   adaptive pool, slot conv, GroupNorm+ReLU, resize back
--   dec.ppm_out c4=C                concat(f4, 4 branches), 1x1 conv, GroupNorm+ReLU
--   dec.lateral{s} c=C conv=T       lateral slot conv + GroupNorm+ReLU on f_s
--   dec.out{s} conv=T               top-down resize + add, out slot conv + GroupNorm+ReLU
--   dec.fuse                        3 resizes, concat, fuse, seg1, seg2 (+ their norms)
--   head                            resize to the input size, the final 3x3 conv
-- A table holds one input size, batch, thread count, in_channels, classes, decoder width,
-- clock and statistic (its meta); only the segmentation head is covered.
--
-- Calibration. Modules timed alone run with their data and code hot in cache and without the
-- calls between them, so the sum of the entries falls short of a whole forward by a fairly
-- constant share (measured ~15 % here). build_table therefore also measures `calibrate`
-- (default 10) random subnets, drawn from their own random stream (not the check's), and
-- stores meta.scale = the median of measured / sum; predict = scale x sum.
--
-- Clocks: latency is wall time on the monotonic clock. On a machine shared with other work
-- (load above the core count) preemption inflates every wall-time sample, even the minimum;
-- with one thread, clock = 'thread_cpu' (the thread's CPU time) times the work alone.
local ffi = require 'ffi'
local autonad = require 'autonad'
local arch_mod = require 'autonad.arch'
local json = require 'autonad.json'
local tensor = require 'autonad.tensor'
local random = require 'autonad.random'

local M = {}

M.VERSION = 1

-- clock_gettime under a private name (asm redirect), so that other modules declaring it with
-- their own timespec type cannot clash with this one.
ffi.cdef [[
typedef struct nad_latency_timespec { int64_t tv_sec; int64_t tv_nsec; } nad_latency_timespec;
int nad_latency_clock_gettime(int32_t clk, nad_latency_timespec *ts) __asm__("clock_gettime");
]]
-- Linux's clock ids: the monotonic wall clock, and the CPU time of the calling thread
local CLOCKS = { monotonic = 1, thread_cpu = 3 }
local ts = ffi.new('nad_latency_timespec')

--- Milliseconds on clock `which` (default 'monotonic'; 'thread_cpu': the CPU time of this
--- thread), from an arbitrary origin: use differences.
function M.now_ms(which)
    ffi.C.nad_latency_clock_gettime(CLOCKS[which or 'monotonic'], ts)
    return tonumber(ts.tv_sec) * 1e3 + tonumber(ts.tv_nsec) * 1e-6
end
local now = M.now_ms

-- checks opts.clock against the thread count; returns the clock's name
local function clock_of(clock, threads, where)
    clock = clock or 'monotonic'
    if not CLOCKS[clock] then
        error("autonad: latency." .. where .. ": clock must be 'monotonic' or 'thread_cpu', got " .. tostring(clock), 3)
    end
    if clock == 'thread_cpu' and threads ~= 1 then
        error('autonad: latency.' .. where .. ": the 'thread_cpu' clock times one thread: set threads = 1", 3)
    end
    return clock
end

--- { median, min, p90, mean, n } of a list of numbers (p90: nearest rank).
function M.stats(samples)
    local s = {}
    for i, v in ipairs(samples) do s[i] = v end
    table.sort(s)
    local n = #s
    if n == 0 then error('autonad: latency.stats: no samples', 2) end
    local median = n % 2 == 1 and s[(n + 1) / 2] or 0.5 * (s[n / 2] + s[n / 2 + 1])
    local sum = 0
    for _, v in ipairs(s) do sum = sum + v end
    return { median = median, min = s[1], p90 = s[math.ceil(0.9 * n)], mean = sum / n, n = n }
end

-- runs fn with n threads (nil: unchanged); restores the thread count and the collector (which
-- sample() stops) whatever happens
local function with_threads(n, fn)
    local old = autonad.get_num_threads()
    if n then autonad.set_num_threads(n) end
    local ok, err = pcall(fn)
    collectgarbage('restart')
    autonad.set_num_threads(old)
    if not ok then error(err, 0) end
end

-- samples (ms per call) of fn: warm-up calls, then `repeats` samples, each `inner` calls long
-- with inner chosen so a sample lasts at least min_ms (small modules would else be timed at
-- the clock's resolution). The collector is stopped while sampling.
local function sample(fn, warmup, repeats, min_ms, clock)
    for _ = 1, warmup do fn() end
    local inner = 1
    if min_ms and min_ms > 0 then
        local t0 = now(clock); fn(); local one = now(clock) - t0
        inner = math.max(1, math.ceil(min_ms / math.max(one, 1e-4)))
    end
    collectgarbage('collect')
    collectgarbage('stop')
    local out = {}
    for r = 1, repeats do
        local t0 = now(clock)
        for _ = 1, inner do fn() end
        out[r] = (now(clock) - t0) / inner
    end
    collectgarbage('restart')
    return out
end

local function input_hw(opts)
    local hw = opts.input or { 128, 128 }
    if type(hw) == 'number' then hw = { hw, hw } end
    return hw
end

local function make_input(batch, hw, cin, seed)
    local x = tensor.new(batch, hw[1], hw[2], cin)
    random.new(seed or 0):normal_(x)
    return x
end

--- A subnet's inference latency on this machine: net:set_arch(a), evaluation mode, a fixed
--- input [batch, H, W, Cin] of normal noise; opts.warmup (5) untimed forwards, then
--- opts.repeats (20) timed ones, each on its own, with opts.threads threads (restored after).
--- opts: input = {H, W} (or a number; default 128), batch (1), threads (current), warmup,
--- repeats, seed (0), clock ('monotonic': wall time, the latency; 'thread_cpu': this thread's
--- CPU time, for threads = 1 on a machine shared with other work, where preemption inflates
--- wall time). Returns { median, min, p90, mean, n } in ms per image (time / batch), plus
--- samples (ms per forward, whole batch), batch, threads and clock.
function M.measure(net, a, opts)
    opts = opts or {}
    local batch, hw = opts.batch or 1, input_hw(opts)
    local threads = opts.threads or autonad.get_num_threads()
    local clock = clock_of(opts.clock, threads, 'measure')
    local x = make_input(batch, hw, net.in_channels, opts.seed)
    net:set_training(false)
    local grad_was = net:set_grad_enabled(false) -- what inference runs: no activations kept
    net:set_arch(a)
    local samples
    with_threads(threads, function()
        samples = sample(function() net:forward(x) end, opts.warmup or 5, opts.repeats or 20, nil, clock)
    end)
    net:set_grad_enabled(grad_was)
    local per_image = {}
    for i, v in ipairs(samples) do per_image[i] = v / batch end
    local r = M.stats(per_image)
    r.samples, r.batch, r.threads, r.clock = samples, batch, threads, clock
    return r
end

---------------------------------------------------------------------------------------------
-- keys

local function num(x) return string.format('%g', x) end

local key = {
    patch = function(s, cin, c) return 'stage' .. s .. '.patch cin=' .. num(cin) .. ' c=' .. num(c) end,
    block = function(s, c, r, op) return 'stage' .. s .. '.block c=' .. num(c) .. ' r=' .. num(r) .. ' op=' .. op end,
    norm = function(s, c) return 'stage' .. s .. '.norm c=' .. num(c) end,
    ppm = function(i, c4, p, t) return 'dec.ppm' .. i .. ' c4=' .. num(c4) .. ' pool=' .. num(p) .. ' conv=' .. t end,
    ppm_out = function(c4) return 'dec.ppm_out c4=' .. num(c4) end,
    lateral = function(s, c, t) return 'dec.lateral' .. s .. ' c=' .. num(c) .. ' conv=' .. t end,
    out = function(s, t) return 'dec.out' .. s .. ' conv=' .. t end,
    fuse = function() return 'dec.fuse' end,
    head = function() return 'head' end,
}
M.key = key

--- The table keys whose entries make up architecture a's latency, in forward order.
function M.keys(tbl, a)
    local m = tbl.meta
    local out = {}
    for s = 1, #a.width do
        local c = a.width[s]
        out[#out + 1] = key.patch(s, s == 1 and m.in_channels or a.width[s - 1], c)
        for b = 1, a.depth[s] do out[#out + 1] = key.block(s, c, a.ratio[s][b], a.op[s][b]) end
        out[#out + 1] = key.norm(s, c)
    end
    local conv = {}
    for i, name in ipairs(m.slots) do conv[name] = a.decoder.conv[i] end
    local S = #a.width
    local c4 = a.width[S]
    for i = 1, 4 do out[#out + 1] = key.ppm(i, c4, a.decoder.pool[i], conv['ppm' .. i]) end
    out[#out + 1] = key.ppm_out(c4)
    for s = S - 1, 1, -1 do
        out[#out + 1] = key.lateral(s, a.width[s], conv['lateral' .. s])
        out[#out + 1] = key.out(s, conv['out' .. s])
    end
    out[#out + 1] = key.fuse()
    out[#out + 1] = key.head()
    return out
end

--- Predicted latency of a (ms per image): the sum of its entries. Errors on a missing entry.
--- The sum of the entries architecture a is made of (ms per image).
function M.sum_of_entries(tbl, a)
    local sum = 0
    for _, k in ipairs(M.keys(tbl, a)) do
        local v = tbl.entries[k]
        if not v then
            error("autonad: latency.predict: no entry '" .. k .. "' in the table (built for another space?)", 2)
        end
        sum = sum + v
    end
    return sum
end

--- Predicted latency of a (ms per image): the table's calibration scale x the sum of entries.
function M.predict(tbl, a)
    return (tbl.meta.scale or 1) * M.sum_of_entries(tbl, a)
end

--- A cost function for autonad.prior.from_table: cost(stage, block, op) = the table's mean
--- over the stage's widths and ratios of that operator's block latency (the prior fixes
--- operators per position only), and cost('decoder', slot, type) = the mean over the input
--- widths (and pool sizes for PPM slots) of that slot's entries with that conv type.
function M.cost_function(tbl, space)
    local m = tbl.meta
    local function mean_of(keys)
        local sum, n = 0, 0
        for _, k in ipairs(keys) do
            local v = tbl.entries[k]
            if not v then error("autonad: latency.cost_function: no entry '" .. k .. "' in the table", 0) end
            sum, n = sum + v, n + 1
        end
        return sum / n
    end
    return function(stage, b, choice)
        local keys = {}
        if stage == 'decoder' then
            local name = m.slots[b]
            local kind, idx = name:match('^(%a+)(%d)$')
            idx = tonumber(idx)
            if kind == 'ppm' then
                for _, c4 in ipairs(space.stages[#space.stages].width) do
                    for _, p in ipairs(space.decoder.pool_sizes[idx]) do keys[#keys + 1] = key.ppm(idx, c4, p, choice) end
                end
            elseif kind == 'lateral' then
                for _, c in ipairs(space.stages[idx].width) do keys[#keys + 1] = key.lateral(idx, c, choice) end
            else
                keys[1] = key.out(idx, choice)
            end
        else
            local st = space.stages[stage]
            for _, c in ipairs(st.width) do
                for _, r in ipairs(st.ratio) do keys[#keys + 1] = key.block(stage, c, r, choice) end
            end
        end
        return mean_of(keys)
    end
end

---------------------------------------------------------------------------------------------
-- building the table

local function index_of(list, v) for i, x in ipairs(list) do if x == v then return i end end end

local function new_net(space, m, seed)
    local Supernet = require 'autonad.supernet'
    return Supernet.new(space, { in_channels = m.in_channels, classes = m.classes, head = 'seg', seed = seed or 0 })
end

-- the jobs: { key, arch, fn = function(net, x) -> the closure to time }, the arch a variant of
-- the smallest subnet holding the configuration
local function jobs_for(space, m)
    local base = arch_mod.smallest(space)
    local jobs = {}
    local function add(k, edit, fn)
        local a = arch_mod.copy(base)
        edit(a)
        jobs[#jobs + 1] = { key = k, arch = a, fn = fn }
    end
    local slots = space.decoder.slots
    for s, st in ipairs(space.stages) do
        local cins = s == 1 and { m.in_channels } or space.stages[s - 1].width
        for _, cin in ipairs(cins) do
            for _, c in ipairs(st.width) do
                add(key.patch(s, cin, c), function(a) a.width[s] = c; if s > 1 then a.width[s - 1] = cin end end,
                    function(net, x)
                        local stg, xin = net.stages[s], s == 1 and x or net.features[s - 1]
                        return function() stg.patch_norm:forward(stg.patch:forward(xin)) end
                    end)
            end
        end
        for _, c in ipairs(st.width) do
            for _, r in ipairs(st.ratio) do
                for _, op in ipairs(st.operators) do
                    add(key.block(s, c, r, op), function(a) a.width[s] = c; a.ratio[s][1] = r; a.op[s][1] = op end,
                        function(net)
                            local stg = net.stages[s]
                            local blk, xin = stg.blocks[1], stg.inputs[1]
                            return function() blk:forward(xin, net.rng) end
                        end)
                end
            end
            add(key.norm(s, c), function(a) a.width[s] = c end, function(net)
                local stg = net.stages[s]
                local last = stg.last
                return function() stg.norm:forward(last) end
            end)
        end
    end
    local d = space.decoder
    local S = #space.stages
    for i = 1, 4 do
        local slot = index_of(slots, 'ppm' .. i)
        for _, c4 in ipairs(space.stages[S].width) do
            for _, p in ipairs(d.pool_sizes[i]) do
                for _, t in ipairs(d.conv_types) do
                    add(key.ppm(i, c4, p, t), function(a) a.width[S] = c4; a.decoder.pool[i] = p; a.decoder.conv[slot] = t end,
                        function(net)
                            local mf, f4 = net.head.mfam, net.features[S]
                            return function() mf:ppm_branch(i, f4) end
                        end)
                end
            end
        end
    end
    for _, c4 in ipairs(space.stages[S].width) do
        add(key.ppm_out(c4), function(a) a.width[S] = c4 end, function(net)
            local mf, f4 = net.head.mfam, net.features[S]
            return function() mf:ppm_merge(f4) end
        end)
    end
    for s = S - 1, 1, -1 do
        local lat, out = index_of(slots, 'lateral' .. s), index_of(slots, 'out' .. s)
        for _, t in ipairs(d.conv_types) do
            for _, c in ipairs(space.stages[s].width) do
                add(key.lateral(s, c, t), function(a) a.width[s] = c; a.decoder.conv[lat] = t end, function(net)
                    local mf, f = net.head.mfam, net.features[s]
                    return function() mf:lateral_step(s, f) end
                end)
            end
            add(key.out(s, t), function(a) a.decoder.conv[out] = t end, function(net)
                local mf, f = net.head.mfam, net.features[s]
                local top = s == S - 1 and mf.P or mf.fsum[s + 1]
                return function() mf:top_down_step(s, f, top) end
            end)
        end
    end
    add(key.fuse(), function() end, function(net)
        local mf, f1 = net.head.mfam, net.features[1]
        return function() mf:fuse_step(f1) end
    end)
    add(key.head(), function() end, function(net, x)
        local hd, h, w = net.head, x:size(2), x:size(3)
        return function() hd:upsample_step(h, w) end
    end)
    return jobs
end

--- Measures every operator configuration of space (segmentation head) at one input size,
--- batch and thread count. opts: input = {H, W} (128), batch (1), threads (current),
--- in_channels (1), classes (2), seed (0), warmup (3), repeats (11), min_sample_ms (2),
--- stat ('median' or 'min': the statistic of the samples an entry keeps; 'min' resists a
--- machine shared with other work, where preemption inflates the median), net (a Supernet of
--- this space with the seg head; built when absent), clock (as in measure), only (a set
--- { key = true }: measure these entries only), log (function(line); default silent).
--- Returns { version, meta = {...}, entries = { key = ms per image } }.
-- the median over count random subnets (from seed) of measured latency / sum of entries
local function calibration(space, net, tbl, count, seed)
    local m, rng, ratios = tbl.meta, random.new(seed), {}
    for i = 1, count do
        local a = arch_mod.sample(space, rng)
        local r = M.measure(net, a, { input = m.input, batch = m.batch, threads = m.threads,
            clock = m.clock, warmup = 3, repeats = 11 })
        ratios[i] = r[m.stat] / M.sum_of_entries(tbl, a)
    end
    return M.stats(ratios).median
end

function M.build_table(space, opts)
    opts = opts or {}
    local batch, hw = opts.batch or 1, input_hw(opts)
    local net = opts.net
    local m = {
        space = space.name, input = { hw[1], hw[2] }, batch = batch,
        threads = opts.threads or autonad.get_num_threads(),
        in_channels = net and net.in_channels or opts.in_channels or 1,
        classes = net and net.classes or opts.classes or 2,
        decoder_width = space.decoder.width, slots = arch_mod.copy(space.decoder.slots),
        blas = autonad.blas_info(), warmup = opts.warmup or 3, repeats = opts.repeats or 11,
        min_sample_ms = opts.min_sample_ms or 2, stat = opts.stat or 'median',
    }
    m.clock = clock_of(opts.clock, m.threads, 'build_table')
    if m.stat ~= 'median' and m.stat ~= 'min' then
        error("autonad: latency.build_table: stat must be 'median' or 'min', got " .. tostring(m.stat), 2)
    end
    if net and net.head_kind ~= 'seg' then error("autonad: latency.build_table: the net's head must be 'seg'", 2) end
    net = net or new_net(space, m, opts.seed)
    net:set_training(false)
    -- each entry re-runs one step on the inputs the whole forward left: with gradients on,
    -- every layer keeps its own buffers, so those inputs are still there
    local grad_was = net:set_grad_enabled(true)
    local x = make_input(batch, hw, m.in_channels, opts.seed)
    local log = opts.log or function() end
    -- group the jobs by architecture: one set_arch + forward fills the buffers for all of them
    local groups, order = {}, {}
    for _, j in ipairs(jobs_for(space, m)) do
        if not opts.only or opts.only[j.key] then
            local k = arch_mod.key(j.arch)
            if not groups[k] then groups[k] = {}; order[#order + 1] = k end
            table.insert(groups[k], j)
        end
    end
    local entries, n = {}, 0
    local t0 = now()
    with_threads(m.threads, function()
        for _, k in ipairs(order) do
            local g = groups[k]
            net:set_arch(g[1].arch)
            net:forward(x)
            for _, j in ipairs(g) do
                local st = M.stats(sample(j.fn(net, x), m.warmup, m.repeats, m.min_sample_ms, m.clock))
                entries[j.key] = st[m.stat] / batch
                n = n + 1
                log(string.format('%-44s %9.4f ms  (min %.4f, p90 %.4f)', j.key, st.median / batch,
                    st.min / batch, st.p90 / batch))
            end
        end
    end)
    net:set_grad_enabled(grad_was)
    local tbl = { version = M.VERSION, meta = m, entries = entries }
    if not opts.only and (opts.calibrate or 10) > 0 then
        m.scale = calibration(space, net, tbl, opts.calibrate or 10, (opts.seed or 0) + 7919)
        log(string.format('calibration: measured / sum of entries = %.4f (median of %d subnets)',
            m.scale, opts.calibrate or 10))
    end
    log(string.format('latency table: %d entries in %.1f s', n, (now() - t0) / 1e3))
    return tbl
end

---------------------------------------------------------------------------------------------
-- files

function M.save(tbl, path) json.write(path, tbl, { indent = '  ' }) end

--- Reads a table written by save; errors name the file and what is wrong.
function M.load(path)
    local t = json.read(path)
    if type(t) ~= 'table' or t.version ~= M.VERSION or type(t.meta) ~= 'table' or type(t.entries) ~= 'table' then
        error('autonad: latency.load: ' .. path .. ' is not a latency table (version ' .. M.VERSION .. ')', 2)
    end
    for k, v in pairs(t.entries) do
        if type(v) ~= 'number' then error('autonad: latency.load: ' .. path .. ": entry '" .. k .. "' is not a number", 2) end
    end
    return t
end

---------------------------------------------------------------------------------------------
-- checking the predictor

--- The predictor's error against measurement on opts.count (50) random subnets of space drawn
--- with seed opts.seed (0), measured with the table's input size, batch and threads, and
--- compared on the table's statistic (meta.stat: the median or the min of the timed runs)
--- and clock (meta.clock).
--- opts: count, seed, warmup (5), repeats (20), net (else built from the table's meta),
--- log (function(line); default print). Returns { median, worst, bias (mean signed relative
--- error), count, rows = { {arch, measured, predicted, error}, ... } }; errors are relative
--- to the measured median (0.05 = 5 %).
function M.check(space, tbl, opts)
    opts = opts or {}
    local m = tbl.meta
    if space.decoder.width ~= m.decoder_width then
        error('autonad: latency.check: the table was built for decoder width ' .. m.decoder_width ..
            ', the space has ' .. space.decoder.width, 2)
    end
    local net = opts.net or new_net(space, m, opts.seed)
    local log = opts.log or print
    local rng = random.new(opts.seed or 0)
    local count = opts.count or 50
    local stat = m.stat or 'median'
    log(string.format("latency check: %d subnets of '%s', %dx%d, batch %d, %d thread(s), %s clock",
        count, tostring(space.name), m.input[1], m.input[2], m.batch, m.threads, m.clock or 'monotonic'))
    log(string.format('%5s %12s %13s %9s   (%s of the timed runs)', '#', 'measured ms', 'predicted ms',
        'error %', stat))
    local rows, abs, bias = {}, {}, 0
    for i = 1, count do
        local a = arch_mod.sample(space, rng)
        local r = M.measure(net, a, { input = m.input, batch = m.batch, threads = m.threads,
            clock = m.clock, warmup = opts.warmup or 5, repeats = opts.repeats or 20 })
        local p, meas = M.predict(tbl, a), r[stat]
        local e = (p - meas) / meas
        rows[i] = { arch = a, measured = meas, predicted = p, error = e, p90 = r.p90, min = r.min }
        abs[i], bias = math.abs(e), bias + e
        log(string.format('%5d %12.3f %13.3f %9.2f', i, meas, p, 100 * e))
    end
    local st = M.stats(abs)
    local worst_i = 1
    for i = 2, count do if abs[i] > abs[worst_i] then worst_i = i end end
    local res = { median = st.median, worst = abs[worst_i], bias = bias / count, count = count, rows = rows }
    log(string.format('relative error: median %.2f %%, worst %.2f %% (subnet %d), mean signed %+.2f %%',
        100 * res.median, 100 * res.worst, worst_i, 100 * res.bias))
    return res
end

return M
