-- profile_subnet.lua: a driver for profiling and before/after timing of the core's kernels:
-- a subnet of bench/vs_torch.lua (searchspaces/autonad.lua; the middle one unless named),
-- decoder width 64 (or D), grey input 200x200 (or S), batch 8 (or B), N training steps
-- (forward, loss, backward; no optimiser) or inferences after one warm-up step. Prints the
-- median seconds per step.
--   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE AUTONAD_LIB=$PWD/build/libautonad.so \
--       luajit bench/profile_subnet.lua [steps=5] [threads=1] [mode=train|inf] [batch=8] \
--       [subnet=middle] [D=64] [S=200]
-- Under perf: perf record -g -o perf.data luajit bench/profile_subnet.lua 10
local dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
package.path = table.concat({ dir .. '/../lua/?.lua', dir .. '/../lua/?/init.lua', package.path }, ';')
local autonad = require 'autonad'
local arch = require 'autonad.arch'
local Supernet = require 'autonad.supernet'
local vs = dofile(dir .. '/vs_torch.lua')

local steps, threads, mode = tonumber(arg[1] or 5), tonumber(arg[2] or 1), arg[3] or 'train'
autonad.set_num_threads(threads)

local now_ms = require('autonad.latency').now_ms
local function now() return now_ms() / 1e3 end -- seconds, monotonic clock

local size, width, batch, classes = tonumber(arg[7] or 200), tonumber(arg[6] or 64), tonumber(arg[4] or 8), 4
local a = vs.arch_of(arg[5] or 'middle')
local s = arch.copy(require('autonad.space').load(dir .. '/../searchspaces/autonad.lua'))
s.decoder.width = width
local net = Supernet.new(arch.space_of(s, a), { in_channels = 1, classes = classes, head = 'seg', seed = 1 })
net:set_arch(a)
net:set_grad_enabled(mode ~= 'inf')

local x = autonad.tensor(batch, size, size, 1)
autonad.rng(3):normal_(x)
local labels = autonad.tensor(batch, size, size)
local lp, r = labels:data(), autonad.rng(4)
for i = 0, labels:numel() - 1 do lp[i] = math.floor(r:random() * classes) end

local function step()
    if mode == 'inf' then net:forward(x); return end
    net:zero_grad()
    local logits = net:forward(x)
    net:loss(logits, labels)
    net:backward(net.dlogits)
end

step()
local times = {}
for i = 1, steps do
    local t0 = now()
    step()
    times[i] = now() - t0
end
table.sort(times)
print(string.format('%s %s %dx%d D=%d: median %.4f s/step (min %.4f, %d steps, batch %d, %d threads)', arg[5] or 'middle', mode, size, size, width,
    times[math.floor(#times / 2) + 1], times[1], steps, batch, threads))
