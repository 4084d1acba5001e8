-- test_cli.lua: the `autonad` command end to end on a tiny recipe: every stage through `run`,
-- a training process killed with SIGKILL mid-stage and restarted ending bit-identical to an
-- uninterrupted one, predict, and a malformed recipe failing at once with the key named.
local autonad = require 'autonad'
local ckpt = require 'autonad.checkpoint'
local json = require 'autonad.json'
local T = require 'testing'

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$')
local root = here .. '/../..'
local bin = os.getenv('AUTONAD_BIN') or (root .. '/build/autonad')

local tests = {}

local function tmpdir()
    local p = os.tmpname()
    os.remove(p)
    os.execute("mkdir -p '" .. p .. "'")
    return p
end

local function write(path, s) local f = assert(io.open(path, 'w')); f:write(s); f:close() end
local function exists(p) local f = io.open(p, 'rb'); if f then f:close() end; return f ~= nil end

-- runs the command line; returns ok, combined output
local function sh(cmd)
    local p = io.popen(cmd .. ' 2>&1; echo "rc=$?"')
    local out = p:read('*a')
    p:close()
    local rc = tonumber(out:match('rc=(%d+)%s*$'))
    return rc == 0, out
end

local function tiny_recipe(dir, epochs)
    local path = dir .. '/tiny.lua'
    write(path, string.format([[
return {
    name = 'tiny', seed = 1, threads = 1, output = %q,
    data = { kind = 'generated', n = 48, size = { 32, 32 }, classes = { 2, 4 } },
    space = %q,
    supernet = { epochs = %d, batch = 4, lr = 2e-3, warmup_epochs = 0.5 },
    prior = { top = 20 },
    search = { params = { 1e4, 1e7 }, val_images = 8,
               options = { population = 4, parents = 2, mutations = 2, crossovers = 2, generations = 1,
                           warmup = 2, baseline = 2 } },
    finetune = { epochs = 1, batch = 4 },
}
]], dir .. '/run', here .. '/fixtures/space_tiny.lua', epochs))
    return path
end

function tests.run_every_stage_and_predict()
    local dir = tmpdir()
    local recipe = tiny_recipe(dir, 2)
    local ok, out = sh(string.format("'%s' run '%s' --quiet", bin, recipe))
    T.ok(ok, out)
    for _, f in ipairs({ 'recipe.json', 'supernet.ckpt', 'supernet_log.jsonl', 'prior.json', 'search.json',
        'finetune_searched.ckpt', 'metrics_searched.json' }) do
        T.ok(exists(dir .. '/run/' .. f), 'the run directory lacks ' .. f)
    end
    local m = json.read(dir .. '/run/metrics_searched.json')
    T.ok(m.latency_ms.median > 0 and m.params > 0 and m.metrics.miou, 'metrics')
    -- running again resumes: nothing left to do, same result
    local ok2, out2 = sh(string.format("'%s' run '%s' --quiet", bin, recipe))
    T.ok(ok2, out2)
    T.eq(json.read(dir .. '/run/search.json').best and 1, 1)
    -- predict on a generated image of another size than the network's: the mask has the
    -- image's size and holds class indices
    local image = require 'autonad.image'
    local img = autonad.tensor(37, 45, 1)
    autonad.rng(3):uniform_(img, 0, 1)
    image.save_png(dir .. '/x.png', img)
    local ok3, out3 = sh(string.format("'%s' predict '%s' '%s' --out '%s' --quiet", bin, recipe, dir .. '/x.png', dir .. '/pred'))
    T.ok(ok3, out3)
    local mask = image.load_mask(dir .. '/pred/x.png')
    T.eq(mask:size(1), 37)
    T.eq(mask:size(2), 45)
    local classes = #json.read(dir .. '/run/metrics_searched.json').metrics.classes
    for i = 0, mask:numel() - 1 do
        local v = mask:data()[i]
        if v < 0 or v >= classes or v ~= math.floor(v) then T.ok(false, 'mask value ' .. v) end
    end
    os.execute("rm -rf '" .. dir .. "'")
end

function tests.killed_training_resumes_bit_identical()
    local a, b = tmpdir(), tmpdir()
    local ra, rb = tiny_recipe(a, 5), tiny_recipe(b, 5)
    local ok, out = sh(string.format("'%s' train-supernet '%s' --quiet", bin, ra))
    T.ok(ok, out)
    -- start b in the background, SIGKILL it once its first checkpoint is there
    os.execute(string.format("'%s' train-supernet '%s' --quiet > '%s/log' 2>&1 & echo $! > '%s/pid'", bin, rb, b, b))
    local pid = io.open(b .. '/pid'):read('*l')
    local killed = false
    for _ = 1, 600 do
        if exists(b .. '/run/supernet.ckpt') then
            os.execute('kill -9 ' .. pid .. ' 2>/dev/null')
            killed = true
            break
        end
        os.execute('sleep 0.05')
    end
    T.ok(killed, 'the background run wrote no checkpoint')
    os.execute('sleep 0.2')
    local _, meta_mid = ckpt.load(b .. '/run/supernet.ckpt')
    T.ok(meta_mid.epoch < 5, 'killed before the end (epoch ' .. meta_mid.epoch .. ')')
    local ok2, out2 = sh(string.format("'%s' train-supernet '%s' --quiet", bin, rb))
    T.ok(ok2, out2)
    local wa, ma = ckpt.load(a .. '/run/supernet.ckpt')
    local wb, mb = ckpt.load(b .. '/run/supernet.ckpt')
    T.eq(mb.iteration, ma.iteration)
    for name, t in pairs(wa) do T.all_near(wb[name], t, 0, name) end
    os.execute("rm -rf '" .. a .. "' '" .. b .. "'")
end

function tests.malformed_recipe_names_the_key()
    local dir = tmpdir()
    write(dir .. '/bad.lua', "return { supernet = { epoch = 3 } }")
    local ok, out = sh(string.format("'%s' train-supernet '%s'", bin, dir .. '/bad.lua'))
    T.ok(not ok, 'a bad recipe must fail')
    T.ok(out:find('supernet.epoch is not a recipe key', 1, true), out)
    local ok2, out2 = sh(string.format("'%s' train-supernet '%s'", bin, dir .. '/missing.lua'))
    T.ok(not ok2 and out2:find('no recipe file', 1, true), out2)
    local ok3, out3 = sh(string.format("'%s' run '%s' --set supernet.epochs=lots", bin, dir .. '/bad.lua'))
    T.ok(not ok3, out3)
    os.execute("rm -rf '" .. dir .. "'")
end

return tests
