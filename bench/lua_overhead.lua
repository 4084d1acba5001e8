-- lua_overhead.lua: how much of a supernet-training iteration runs outside the C core (Lua,
-- subnet sampling, set_arch, bookkeeping, the FFI glue). Every function of the C core is
-- wrapped to add its wall time to a counter; an iteration is what pipeline/train_supernet.lua's
-- loop runs per subnet (sample, its M.step: set_arch, forward, loss, backward, AdamW on the
-- active views, zero_grad; the JSON log line) on one in-memory batch of the recipe's size.
-- Outside = iteration time - time inside C calls; the wrapper's own cost counts as outside,
-- so the figure is an upper bound.
--   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE AUTONAD_LIB=build/libautonad.so \
--       luajit bench/lua_overhead.lua [recipe=recipes/neu_seg_cpu.lua] [iterations=40] [threads=1]
local dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
package.path = table.concat({ dir .. '/../lua/?.lua', dir .. '/../lua/?/init.lua', package.path }, ';')

local core = require 'autonad.ffi'

-- the timing proxy, installed before any other module captures core.C (so every C call of
-- every module is counted); the clock comes from autonad.latency once it is loaded
local realC, inside_ms, calls, now_ms = core.C, 0, 0, nil
local wrapped = {}
core.C = setmetatable({}, { __index = function(_, name)
    local f = wrapped[name]
    if f == nil then
        local v = realC[name]
        if type(v) ~= 'cdata' then f = v -- enum constants
        else
            f = function(...)
                if not now_ms then return v(...) end -- calls made while modules load
                local t0 = now_ms()
                local r = v(...)
                inside_ms, calls = inside_ms + (now_ms() - t0), calls + 1
                return r
            end
        end
        wrapped[name] = f
    end
    return f
end })
now_ms = require('autonad.latency').now_ms

local autonad = require 'autonad'
local arch = require 'autonad.arch'
local json = require 'autonad.json'
local optim = require 'autonad.optim'
local recipe = require 'autonad.recipe'
local Supernet = require 'autonad.supernet'
local context = require 'autonad.pipeline.context'
local train_supernet = require 'autonad.pipeline.train_supernet'

local recipe_path = arg[1] or dir .. '/../recipes/neu_seg_cpu.lua'
local iterations, threads = tonumber(arg[2] or 40), tonumber(arg[3] or 1)
autonad.set_num_threads(threads)
local r = recipe.load(recipe_path)
local space = context.space_of(r)
local classes = r.task == 'segmentation' and 4 or 6 -- NEU-Seg's and NEU-CLS's counts (no data read)
local net = Supernet.new(space, { in_channels = r.data.channels, classes = classes,
    head = r.task == 'segmentation' and 'seg' or 'cls', seed = r.seed })
net:set_training(true)
local B, H, W = r.supernet.batch, r.data.size[1], r.data.size[2]
local images = autonad.tensor(B, H, W, r.data.channels)
autonad.rng(1):normal_(images)
local targets = r.task == 'segmentation' and autonad.tensor(B, H, W) or autonad.tensor(B)
do
    local p, g = targets:data(), autonad.rng(2)
    for i = 0, targets:numel() - 1 do p[i] = math.floor(g:random() * classes) end
end
local values, grads = {}, {}
for i, e in ipairs(net:params().list) do values[i], grads[i] = e.value, e.grad end
local opt = optim.AdamW(values, grads, { lr = r.supernet.lr, weight_decay = r.supernet.weight_decay })
local sampler = autonad.rng(r.seed + 1)
local log = {}

local function iteration(it)
    local a = arch.sample(space, sampler)
    local loss, fwd_ms = train_supernet.step(net, opt, a, images, targets)
    log[(it - 1) % 16 + 1] = json.encode({ iter = it, epoch = 1, arch = a, forward_ms = fwd_ms,
        loss = loss, lr = opt.lr, batch = B })
end

for it = 1, 3 do iteration(it) end -- warm-up: buffers grow, traces compile
local shares, walls = {}, {}
local calls0 = calls
for it = 1, iterations do
    local t0, c0 = now_ms(), inside_ms
    iteration(it + 3)
    local wall = now_ms() - t0
    walls[it], shares[it] = wall, (wall - (inside_ms - c0)) / wall
end
local function median(t)
    local c = { unpack(t) }
    table.sort(c)
    return c[math.floor(#c / 2) + 1]
end
local sorted = { unpack(shares) }
table.sort(sorted)
print(string.format('%s: %d iterations (batch %d, %dx%d, %d thread(s), %s)', recipe_path, iterations,
    B, H, W, threads, autonad.blas_info()))
print(string.format('iteration median %.1f ms; C calls per iteration %d', median(walls),
    (calls - calls0) / iterations))
print(string.format('outside the C core: median %.2f %%, p90 %.2f %%, max %.2f %% of an iteration',
    100 * median(shares), 100 * sorted[math.max(1, math.ceil(0.9 * #sorted))], 100 * sorted[#sorted]))
