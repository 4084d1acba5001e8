-- test_e2e_train.lua: the core end to end. A small channels-last conv network (nn.Sequential
-- of Conv2d / ReLU / AvgPool2d / AdaptiveAvgPool2d / Linear) learns to classify generated grey
-- 32x32 surfaces (defect-free, scratch, pit; data.synth) with AdamW and a cosine schedule:
-- the loss must fall clearly and held-out accuracy (metrics.Confusion) beat chance twice over;
-- a fixed seed and thread count repeat the loss curve bit for bit; 1 and 2 threads agree.
local ffi = require 'ffi'
local autonad = require 'autonad'
local synth = require 'autonad.data.synth'
local metrics = require 'autonad.metrics'
local T = require 'testing'
local nn, optim = autonad.nn, autonad.optim

local tests = {}

local SIZE, N_TRAIN, N_TEST, BATCH, EPOCHS = 32, 480, 120, 32, 20
local CLASSES = { 'none', 'scratch', 'pit' } -- labels 0, 1, 2
local K = #CLASSES
local STEPS_PER_EPOCH = math.floor(N_TRAIN / BATCH)
local TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH
-- the thread comparison runs this many steps: float rounding that differs between thread
-- counts grows along a training run (measured: 1 vs 2 threads first differ at step 25, pass
-- 1e-5 relative near step 50), so it compares the opening of the curve
local THREAD_STEPS = 20

-- The generated set, once: images [N,S,S,1] normalised to zero mean and unit variance over
-- the whole set, labels [N]. Samples 1..N_TRAIN train, the rest are held out.
local data
local function get_data()
    if data then return data end
    local n, px = N_TRAIN + N_TEST, SIZE * SIZE
    local ds = synth.dataset { n = n, size = SIZE, seed = 7, classes = CLASSES }
    local x, y, img = autonad.tensor(n, SIZE, SIZE, 1), autonad.tensor(n), autonad.tensor()
    local xd, yd = x:data(), y:data()
    for i = 1, n do
        local _, _, label = ds:get(i, img)
        ffi.copy(xd + (i - 1) * px, img:data(), px * 4)
        yd[i - 1] = label
    end
    local sum, sq = 0, 0
    for i = 0, n * px - 1 do sum = sum + xd[i] end
    local mean = sum / (n * px)
    for i = 0, n * px - 1 do sq = sq + (xd[i] - mean) ^ 2 end
    local std = math.sqrt(sq / (n * px))
    for i = 0, n * px - 1 do xd[i] = (xd[i] - mean) / std end
    data = { x = x, y = y }
    return data
end

local function build_net(rng)
    local w = 16
    return nn.Sequential(
        nn.Conv2d(1, w, 3, { pad = 1, rng = rng, grad_input = false }), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(w, 2 * w, 3, { pad = 1, rng = rng }), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(2 * w, 2 * w, 3, { pad = 1, rng = rng }), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),      -- [N,1,1,2w]
        nn.Linear(2 * w, K, { rng = rng })) -- logits [N,1,1,K], one row per image
end

-- Runs f with the core on `threads` threads, restoring the count even when f fails.
local function with_threads(threads, f)
    local saved = autonad.get_num_threads()
    autonad.set_num_threads(threads)
    local ok, a, b = pcall(f)
    autonad.set_num_threads(saved)
    if not ok then error(a, 0) end
    return a, b
end

-- Trains a fresh network (seed fixes the weights and the batch order) for `steps` steps of
-- the EPOCHS-long schedule; returns the loss of every step and the network.
local function train(seed, threads, steps)
    return with_threads(threads, function()
        local d = get_data()
        local px = SIZE * SIZE
        local xd, yd = d.x:data(), d.y:data()
        local rng = autonad.rng(seed)
        local net = build_net(rng)
        local criterion = nn.CrossEntropy()
        local params, grads = net:parameters()
        local opt = optim.AdamW(params, grads, { lr = 1e-2, weight_decay = 0.01 })
        local sched = optim.schedule.new { kind = 'cosine', base = 1e-2, floor = 1e-5,
                                           warmup = 10, total = TOTAL_STEPS }
        local xb, yb = autonad.tensor(BATCH, SIZE, SIZE, 1), autonad.tensor(BATCH)
        local xbd, ybd = xb:data(), yb:data()
        local order = {}
        for i = 1, N_TRAIN do order[i] = i - 1 end
        local losses, t = {}, 0
        while t < steps do
            for i = N_TRAIN, 2, -1 do -- a fresh shuffle each epoch, from the seeded rng
                local j = rng:randint(1, i)
                order[i], order[j] = order[j], order[i]
            end
            for b = 0, STEPS_PER_EPOCH - 1 do
                if t >= steps then break end
                for k = 0, BATCH - 1 do
                    local idx = order[b * BATCH + k + 1]
                    ffi.copy(xbd + k * px, xd + idx * px, px * 4)
                    ybd[k] = yd[idx]
                end
                opt.lr = sched.lr(t)
                net:zero_grad()
                local logits = net:forward(xb)
                losses[#losses + 1] = criterion:forward(logits, yb)
                net:backward(xb, criterion:backward(logits, yb))
                opt:step()
                t = t + 1
            end
        end
        return losses, net
    end)
end

local function mean(list, i, j)
    local s = 0
    for k = i, j do s = s + list[k] end
    return s / (j - i + 1)
end

-- the full 1-thread run, shared by the tests below (it is the slow part)
local reference
local function reference_run()
    if not reference then
        local losses, net = train(1, 1, TOTAL_STEPS)
        reference = { losses = losses, net = net }
    end
    return reference
end

-- the opening of the curve on 2 threads, shared likewise
local two_threads
local function two_thread_run()
    two_threads = two_threads or train(1, 2, THREAD_STEPS)
    return two_threads
end

function tests.conv_net_learns_generated_defects()
    local r = reference_run()
    local first = mean(r.losses, 1, STEPS_PER_EPOCH)
    local last = mean(r.losses, TOTAL_STEPS - STEPS_PER_EPOCH + 1, TOTAL_STEPS)
    T.eq(#r.losses, TOTAL_STEPS)
    T.ok(math.abs(first - math.log(K)) < 0.1,
        string.format('first epoch loss %.4f should start near log K = %.4f', first, math.log(K)))
    T.ok(last < 0.6 * first,
        string.format('last epoch loss %.4f should be below 0.6 x the first %.4f', last, first))
    -- held-out accuracy through the metrics module
    local d = get_data()
    local xt, yt = d.x:narrow(1, N_TRAIN + 1, N_TEST), d.y:narrow(1, N_TRAIN + 1, N_TEST)
    local cm = metrics.Confusion(K, { 'none', 'scratch', 'pit' })
    cm:update(with_threads(1, function() return r.net:evaluate():forward(xt) end), yt)
    r.net:training()
    local c = cm:classification()
    T.eq(cm:total(), N_TEST)
    T.ok(c.accuracy >= 2 / K, string.format('held-out accuracy %.3f should be >= 2 x chance (%.3f)',
        c.accuracy, 2 / K))
    for k = 1, K do
        T.ok(c.recall[k] > 1 / K, string.format('recall of %s %.3f is no better than chance',
            CLASSES[k], c.recall[k]))
    end
    if os.getenv('E2E_VERBOSE') then
        print(string.format('  e2e: loss first epoch %.4f, last epoch %.4f; held-out accuracy ' ..
            '%.3f (chance %.3f); recall %.3f %.3f %.3f', first, last, c.accuracy, 1 / K,
            c.recall[1], c.recall[2], c.recall[3]))
    end
end

function tests.same_seed_and_threads_repeat_the_curve_bit_for_bit()
    local r = reference_run()
    local again = train(1, 1, TOTAL_STEPS)
    T.eq(#again, #r.losses)
    for i = 1, #again do T.eq(again[i], r.losses[i], 'loss of step ' .. i .. ' (1 thread)') end
    -- two threads: the reductions split between threads are fixed for a fixed count
    local a, b = two_thread_run(), train(1, 2, THREAD_STEPS)
    for i = 1, THREAD_STEPS do T.eq(b[i], a[i], 'loss of step ' .. i .. ' (2 threads)') end
    -- and another seed gives another curve (the seed is really used)
    local other = train(2, 1, 3)
    T.ok(other[1] ~= r.losses[1] or other[2] ~= r.losses[2], 'seed 2 repeated seed 1')
end

function tests.one_and_two_threads_give_the_same_curve()
    local r = reference_run()
    local two = two_thread_run()
    local worst = 0
    for i = 1, THREAD_STEPS do
        local rel = math.abs(two[i] - r.losses[i]) / math.abs(r.losses[i])
        worst = math.max(worst, rel)
        T.ok(rel <= 1e-5, string.format('step %d: 2 threads %.9g vs 1 thread %.9g (rel %.3g)',
            i, two[i], r.losses[i], rel))
    end
    if os.getenv('E2E_VERBOSE') then
        print(string.format('  e2e: 1 vs 2 threads over %d steps: worst relative difference %.3g',
            THREAD_STEPS, worst))
    end
end

return tests
