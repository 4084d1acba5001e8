-- vs_torch.lua: the autonad side of the autonad-vs-PyTorch benchmark (bench/vs_torch.py drives
-- it; see bench/README-vs-torch.md). Two commands, each run in a fresh process:
--   prepare <subnet> <size> <width> <out.ckpt>   builds the fixed subnet (smallest | middle |
--       largest of searchspaces/autonad.lua, decoder width D), draws its weights (autonad's
--       init, seed 1) and an input [2,size,size,1], writes weights + bench.input +
--       bench.logits (autonad's forward) to out.ckpt and prints one JSON line (arch, MACs).
--   run <ckpt> <threads> <mode> <warmup> <repeats> [check=1] [min_s=0]   times one mode
--       (inf1 | inf8 | train8) on the checkpoint's subnet and weights (check: first compare its
--       logits with the file's): warmup calls, then at least `repeats` timed calls, more while
--       their total is below min_s seconds (at most MAX_CALLS); prints one JSON line: seconds
--       per call, peak RSS (VmHWM), OpenBLAS config.
-- AUTONAD_LIB=build/libautonad.so luajit bench/vs_torch.lua ...
local dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
package.path = table.concat({ dir .. '/../lua/?.lua', dir .. '/../lua/?/init.lua', package.path }, ';')
local autonad = require 'autonad'
local arch = require 'autonad.arch'
local ckpt = require 'autonad.checkpoint'
local json = require 'autonad.json'
local Supernet = require 'autonad.supernet'
local cost = require 'autonad.supernet.cost'
local AdamW = require 'autonad.optim.AdamW'

local now_ms = require('autonad.latency').now_ms
local function now() return now_ms() / 1e3 end -- seconds, monotonic clock

local SPACE = require('autonad.space').load(dir .. '/../searchspaces/autonad.lua')

-- The fixed middle subnet: depth 2 everywhere, middle widths and ratios, every mixer and every
-- decoder conv type (5x5 only on the small PPM branch, 3x3 at 1/4 resolution).
local MIDDLE = {
    depth = { 2, 2, 2, 2 }, width = { 32, 64, 160, 224 },
    ratio = { { 8, 8 }, { 8, 8 }, { 4, 4 }, { 4, 4 } },
    op = { { 'attention', 'mlp' }, { 'conv', 'attention' }, { 'mlp', 'conv' }, { 'attention', 'mlp' } },
    decoder = { conv = { '3x3', 'dw3x3', '1x1', '5x5', 'dil3x3', 'dw3x3', '1x1', '3x3', 'dil3x3', 'dw3x3' },
                pool = { 1, 2, 3, 6 } },
}

local M = {}

function M.arch_of(name)
    if name == 'smallest' then return arch.smallest(SPACE) end
    if name == 'largest' then return arch.largest(SPACE) end
    if name == 'middle' then return arch.copy(MIDDLE) end
    error('vs_torch: unknown subnet ' .. tostring(name) .. ' (smallest | middle | largest)', 0)
end

function M.classes_of(size) return size == 200 and 4 or 6 end

-- the standalone network of a (a supernet over a's one-point space), decoder width d
local function build(a, d, classes)
    local s = arch.copy(SPACE)
    s.decoder.width = d
    local net = Supernet.new(arch.space_of(s, a), { in_channels = 1, classes = classes, head = 'seg', seed = 1 })
    net:set_arch(a)
    return net, s
end

local function vm_kb(field)
    local f = io.open('/proc/self/status', 'r')
    local text = f:read('*a')
    f:close()
    return tonumber(text:match(field .. ':%s*(%d+)'))
end

local function median(t)
    local c = {}
    for i, v in ipairs(t) do c[i] = v end
    table.sort(c)
    return c[math.floor(#c / 2) + 1]
end

local commands = {}

function commands.prepare(subnet, size, width, out)
    size, width = tonumber(size), tonumber(width)
    local a, classes = M.arch_of(subnet), M.classes_of(size)
    local net, s = build(a, width, classes)
    local x = autonad.tensor(2, size, size, 1)
    autonad.rng(2):normal_(x)
    local logits = net:forward(x)
    local t = net:extract_weights()
    t['bench.input'], t['bench.logits'] = x, logits
    local c = cost.count(s, a, { in_channels = 1, classes = classes, head = 'seg', input = { size, size } })
    local meta = { arch = a, subnet = subnet, size = size, decoder_width = width, classes = classes,
        groups = s.decoder.groups, in_channels = 1, macs = c.macs, params = net.P:active_numel() }
    ckpt.save(out, t, meta)
    print(json.encode(meta))
end

local MAX_CALLS = 60 -- timed calls under min_s (bench/vs_torch.py: the same)

function commands.run(path, threads, mode, warmup, repeats, check_logits, min_s)
    threads, warmup, repeats = tonumber(threads), tonumber(warmup), tonumber(repeats)
    min_s = tonumber(min_s or 0)
    autonad.set_num_threads(threads)
    local t, meta = ckpt.load(path)
    local size, classes = meta.size, meta.classes
    local net = build(meta.arch, meta.decoder_width, classes)
    net:load_subnet(t, path)
    -- inference keeps no activations for a backward (the check's forward included)
    net:set_grad_enabled(mode ~= 'inf1' and mode ~= 'inf8')
    if check_logits ~= '0' then -- the same function as the file's (costs a batch-2 forward)
        local ref, got = t['bench.logits'], net:forward(t['bench.input'])
        local worst, scale = 0, 0
        local rp, gp = ref:data(), got:data()
        for i = 0, ref:numel() - 1 do
            worst = math.max(worst, math.abs(rp[i] - gp[i]))
            scale = math.max(scale, math.abs(rp[i]))
        end
        if worst > 1e-4 * scale then error(string.format('vs_torch: logits differ by %g (max %g)', worst, scale), 0) end
    end
    t = nil
    collectgarbage()
    local n = mode == 'inf1' and 1 or 8
    local x = autonad.tensor(n, size, size, 1)
    autonad.rng(3):normal_(x)
    local call
    if mode == 'inf1' or mode == 'inf8' then
        call = function() net:forward(x) end
    elseif mode == 'train8' then
        local labels = autonad.tensor(n, size, size)
        local lp, r = labels:data(), autonad.rng(4)
        for i = 0, labels:numel() - 1 do lp[i] = math.floor(r:random() * classes) end
        -- AdamW over the active views (what supernet training steps), lr 1e-4, wd 0.05
        local params, grads, slices = {}, {}, {}
        for i, e in ipairs(net.P.list) do
            params[i], grads[i], slices[i] = e.value, e.grad, e.view or false
        end
        local opt = AdamW(params, grads, { lr = 1e-4, weight_decay = 0.05 })
        call = function()
            net:zero_grad()
            local logits = net:forward(x)
            net:loss(logits, labels)
            net:backward(net.dlogits)
            opt:step(slices)
        end
    else
        error('vs_torch: unknown mode ' .. tostring(mode) .. ' (inf1 | inf8 | train8)', 0)
    end
    for _ = 1, warmup do call() end
    local times, total = {}, 0
    while #times < repeats or (total < min_s and #times < MAX_CALLS) do
        local t0 = now()
        call()
        times[#times + 1] = now() - t0
        total = total + times[#times]
    end
    print(json.encode({ times = times, median = median(times), hwm_kb = vm_kb('VmHWM'),
        rss_kb = vm_kb('VmRSS'), threads = autonad.get_num_threads(), blas = autonad.blas_info() }))
end

if arg and arg[0] and arg[0]:match('vs_torch%.lua$') then
    local cmd = table.remove(arg, 1)
    if not commands[cmd] then
        io.stderr:write('usage: luajit bench/vs_torch.lua prepare <subnet> <size> <width> <out.ckpt>\n' ..
            '       luajit bench/vs_torch.lua run <ckpt> <threads> <inf1|inf8|train8> <warmup> <repeats> [check=1] [min_s=0]\n')
        os.exit(2)
    end
    commands[cmd](unpack(arg))
end

return M
