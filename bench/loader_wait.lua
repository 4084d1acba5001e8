-- loader_wait.lua: how long training waits for data. Loads neu-seg's train split through the
-- batch loader (batch 8, flips and rotations, N threads) while the main thread simulates a
-- training step with a busy loop of fixed duration; prints waiting time as % of step time.
--   AUTONAD_LIB=build/libautonad.so luajit bench/loader_wait.lua [threads=2] [step_ms=200] [batches=60]
local dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
package.path = table.concat({ dir .. '/../lua/?.lua', dir .. '/../lua/?/init.lua', package.path }, ';')
local data = require 'autonad.data'

local now_ms = require('autonad.latency').now_ms
local function now() return now_ms() / 1e3 end -- seconds, monotonic clock

local threads, step_ms, max_batches = tonumber(arg[1] or 2), tonumber(arg[2] or 200), tonumber(arg[3] or 60)
local root = data.shared_root(dir .. '/..') or error('no shared data: set AUTONAD_DATA')
local ds = data.load('neu_seg', root .. '/neu-seg')
local train = ds:subset(data.split.from_files(ds, root .. '/splits/neu-seg').train)
local L = data.loader.new(train, { batch_size = 8, threads = threads, prefetch = 4, seed = 1,
    augment = data.loader.flips_rotations })

L:start(1)
local t_start, n, waited, first_wait = now(), 0, 0, nil
while n < max_batches do
    local x = L:next()
    if not x then break end
    local w = L.wait_buf[0]
    if n == 0 then first_wait = w else waited = waited + w end
    n = n + 1
    local t_end = now() + step_ms / 1000 -- the "training step"
    while now() < t_end do end
end
local total = now() - t_start
L:close()
local steps = n - 1 -- the first batch (cold start) is reported apart
print(string.format('neu-seg train, batch 8, flips+rot90, %d threads, step %d ms, %d batches', threads, step_ms, n))
print(string.format('first batch (cold start) wait: %.1f ms', first_wait * 1000))
print(string.format('waiting after the first batch: %.2f ms per step = %.3f %% of step time',
    waited / steps * 1000, 100 * waited / (steps * step_ms / 1000)))
print(string.format('wall %.2f s for %d steps', total, n))
