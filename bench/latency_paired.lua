-- latency_paired.lua: the lookup table's decomposition error with the machine's load drift
-- taken out: each random subnet is measured and, right after, only its own table entries are
-- re-timed, so measurement and prediction see the same load (bench/latency_check.lua compares
-- against one table built before all the measurements).
--   AUTONAD_LIB=build/libautonad.so luajit bench/latency_paired.lua \
--       [space=autonad] [size=128] [decoder_width=64] [threads=1] [count=20] [stat=median] [clock=monotonic]
local dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
package.path = table.concat({ dir .. '/../lua/?.lua', dir .. '/../lua/?/init.lua', package.path }, ';')
local space_mod = require 'autonad.space'
local arch = require 'autonad.arch'
local latency = require 'autonad.latency'
local Supernet = require 'autonad.supernet'
local autonad = require 'autonad'

local name, size = arg[1] or 'autonad', tonumber(arg[2] or 128)
local width, threads, count = tonumber(arg[3] or 64), tonumber(arg[4] or 1), tonumber(arg[5] or 20)
local stat, clock = arg[6] or 'median', arg[7] or 'monotonic'

local space = arch.copy(space_mod.load(name))
space.decoder.width = width
space = space_mod.check(space)
local net = Supernet.new(space, { in_channels = 1, classes = 2, head = 'seg', seed = 0 })
local rng = autonad.rng(0)
print(string.format("paired check: %d subnets of '%s', %dx%d grey, D %d, %d thread(s), %s of %s time",
    count, space.name, size, size, width, threads, stat, clock))
print(string.format('%5s %12s %13s %9s', '#', 'measured ms', 'predicted ms', 'error %'))
local abs, bias, worst = {}, 0, 0
for i = 1, count do
    local a = arch.sample(space, rng)
    local r = latency.measure(net, a, { input = { size, size }, threads = threads, clock = clock })
    local meta = { meta = { in_channels = 1, slots = space.decoder.slots } }
    local only = {}
    for _, k in ipairs(latency.keys(meta, a)) do only[k] = true end
    local t = latency.build_table(space, { net = net, input = { size, size }, threads = threads,
        stat = stat, clock = clock, only = only })
    local p = latency.predict(t, a)
    local e = (p - r[stat]) / r[stat]
    abs[i], bias, worst = math.abs(e), bias + e, math.max(worst, math.abs(e))
    print(string.format('%5d %12.3f %13.3f %9.2f', i, r[stat], p, 100 * e))
end
print(string.format('relative error: median %.2f %%, worst %.2f %%, mean signed %+.2f %%',
    100 * latency.stats(abs).median, 100 * worst, 100 * bias / count))
