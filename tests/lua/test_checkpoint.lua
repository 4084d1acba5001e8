-- test_checkpoint.lua: named tensors round trip, atomic replacement, and clear errors for
-- missing, foreign and truncated files.
local autonad = require 'autonad'
local ckpt = require 'autonad.checkpoint'
local T = require 'testing'

local tests = {}
local tmp = os.tmpname()

function tests.round_trip_with_meta()
    local a = autonad.tensor(3, 4); autonad.rng(1):normal_(a)
    local b = autonad.tensor(5); autonad.rng(2):normal_(b)
    ckpt.save(tmp, { ['enc.w'] = a, ['enc.b'] = b:narrow(1, 2, 3) }, { step = 7, name = 'x' })
    local t, meta = ckpt.load(tmp)
    T.eq(meta.step, 7); T.eq(meta.name, 'x')
    T.all_near(t['enc.w'], a, 0)
    T.all_near(t['enc.b'], b:narrow(1, 2, 3), 0)
end

function tests.errors_name_the_file()
    T.errors(function() ckpt.load(tmp .. '.missing') end, 'cannot read checkpoint ' .. tmp .. '.missing')
    local f = io.open(tmp, 'wb'); f:write('hello world, not a checkpoint'); f:close()
    T.errors(function() ckpt.load(tmp) end, 'checkpoint ' .. tmp .. ': not an autonad checkpoint')
    ckpt.save(tmp, { w = autonad.tensor(100) }, {})
    f = io.open(tmp, 'rb'); local s = f:read('*a'); f:close()
    f = io.open(tmp, 'wb'); f:write(s:sub(1, #s - 10)); f:close()
    T.errors(function() ckpt.load(tmp) end, 'truncated data for w')
    os.remove(tmp)
end

return tests
