-- latency_check.lua: builds the per-operator latency table of a search space (segmentation head,
-- grey input) and checks its predictions against measured latency on random subnets.
--   AUTONAD_LIB=build/libautonad.so luajit bench/latency_check.lua \
--       [space=autonad] [size=128] [decoder_width=64] [threads=1] [count=50] [stat=median]
--       [clock=monotonic] [table.json]
-- stat: the statistic of the timed runs compared, 'median' or 'min'. clock: 'monotonic' (wall
-- time) or 'thread_cpu' (this thread's CPU time, threads = 1: preemption by other work on a
-- shared machine does not count). The table is written to table.json when a path is given.
local dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
package.path = table.concat({ dir .. '/../lua/?.lua', dir .. '/../lua/?/init.lua', package.path }, ';')
local autonad = require 'autonad'
local space_mod = require 'autonad.space'
local arch = require 'autonad.arch'
local latency = require 'autonad.latency'

local name, size = arg[1] or 'autonad', tonumber(arg[2] or 128)
local width, threads, count = tonumber(arg[3] or 64), tonumber(arg[4] or 1), tonumber(arg[5] or 50)
local stat, clock, out = arg[6] or 'median', arg[7] or 'monotonic', arg[8]

local space = arch.copy(space_mod.load(name))
space.decoder.width = width
space = space_mod.check(space)

print(string.format("space '%s', input %dx%d grey, decoder width %d, batch 1, %d thread(s), %s of %s time",
    space.name, size, size, width, threads, stat, clock))
print('BLAS: ' .. autonad.blas_info())
local t0 = latency.now_ms()
local tbl = latency.build_table(space, { input = { size, size }, threads = threads, stat = stat, clock = clock,
    in_channels = 1, classes = 2 })
local n = 0
for _ in pairs(tbl.entries) do n = n + 1 end
print(string.format('table: %d entries in %.1f s', n, (latency.now_ms() - t0) / 1e3))
if out then latency.save(tbl, out); print('table written to ' .. out) end
t0 = latency.now_ms()
latency.check(space, tbl, { count = count, seed = 0 })
print(string.format('check: %.1f s', (latency.now_ms() - t0) / 1e3))
