-- autonad.recipe: loads and checks a recipe, the Lua file that describes one experiment
-- (data, search space, supernet training, latency prior, search, fine-tuning, evaluation).
-- Every key is checked against the schema below: an unknown key or a value of the wrong
-- kind is an error naming the key, and every default filled in is reported. Command-line
-- overrides (--set search.population=20) edit the same table before the checks.
local json = require 'autonad.json'

local M = {}

-- The schema: each key maps to {kind, default, doc}. kind: 'number', 'integer', 'string',
-- 'boolean', 'table' (free-form), 'list' (of numbers), 'any' (a value the stage checks itself:
-- a name, a path or a table/function), or a nested schema (a table of such entries).
local S = {}
local function opt(kind, default, doc) return { kind = kind, default = default, doc = doc } end

S.name = opt('string', 'run', 'names the run directory runs/<name> unless output is set')
S.seed = opt('integer', 0, 'one seed for weights, sampling, data order and augmentation')
S.threads = opt('integer', 2, 'threads for the core (its parallel loops and OpenBLAS)')
S.output = opt('string', nil, 'the run directory (default runs/<name>)')
S.task = opt('string', 'segmentation', "'segmentation' or 'classification'")
S.space = opt('any', 'autonad', 'a search space: a name in searchspaces/, a path, or a table')
S.space_overrides = opt('table', nil, 'values merged into the space, e.g. {decoder = {width = 64}}')
S.data = {
    kind = opt('string', 'generated', "an adapter (neu_seg, magnetic_tile, voc, neu_cls, dagm, mvtec, folder) or 'generated'"),
    root = opt('string', nil, "the data set folder; 'shared:neu-seg' is inside $AUTONAD_DATA or ../shared/data"),
    splits = opt('string', nil, "split-file prefix (<prefix>.train.txt, ...), e.g. 'shared:splits/neu-seg'; nil: a seeded stratified split"),
    ratios = opt('list', { 0.6, 0.2, 0.2 }, 'train/val/test ratios for a stratified split'),
    size = opt('list', { 128, 128 }, 'network input height and width (images are resized)'),
    channels = opt('integer', 1, 'image channels fed to the network (1 grey, 3 RGB)'),
    mean = opt('number', 0.5, 'normalisation mean'),
    std = opt('number', 0.25, 'normalisation standard deviation'),
    workers = opt('integer', 2, 'loader threads'),
    n = opt('integer', 600, 'generated data: number of images'),
    surface = opt('string', 'mixed', "generated data: 'steel', 'tile' or 'mixed'"),
    classes = opt('list', nil, 'generated data: class ids 0..5 to draw (0 = defect-free)'),
    options = opt('table', nil, 'extra options for the adapter (e.g. {include_free = true})'),
}
S.supernet = {
    epochs = opt('integer', 10, 'supernet training epochs'),
    batch = opt('integer', 8, 'batch size'),
    lr = opt('number', 1e-3, 'AdamW peak learning rate'),
    min_lr = opt('number', 1e-5, 'cosine schedule floor'),
    warmup_epochs = opt('number', 1, 'linear warm-up length in epochs'),
    weight_decay = opt('number', 0.05, 'AdamW decoupled weight decay'),
    augment = opt('any', 'flips_rotations', "'flips_rotations', 'none' or a table of augment fields"),
    sandwich = opt('boolean', false, 'sandwich rule: largest + smallest + one random subnet per step'),
    time_limit = opt('number', nil, 'stop after this many seconds (at an epoch end) and keep the checkpoint'),
    eval_every = opt('integer', 0, 'evaluate the largest, middle and smallest subnets on val every N epochs (0: never)'),
}
S.prior = {
    kind = opt('string', 'latency_log', "'uniform', 'latency_log' (the paper) or 'latency_table'"),
    top = opt('integer', 300, 'fastest logged iterations counted'),
    mix = opt('number', 0.9, 'p = mix * counted + (1 - mix) * uniform'),
}
S.search = {
    strategy = opt('any', 'evolution', "'evolution', 'random', 'nsga2' or a path to a strategy file"),
    options = opt('table', nil, "the strategy's settings (population, generations, ...)"),
    latency_weight = opt('number', 5, 'fitness = accuracy - weight * latency / L_base'),
    params = opt('list', { 1e6, 10e6 }, 'parameter budget {min, max}'),
    val_images = opt('integer', nil, 'evaluate candidates on at most this many val images'),
}
S.finetune = {
    arch = opt('string', 'searched', "what to fine-tune: 'searched', 'largest', 'smallest' or an architecture JSON file"),
    baseline = opt('string', nil, "also fine-tune and evaluate this one the same way (e.g. 'largest') for comparison"),
    epochs = opt('integer', 5, 'fine-tuning epochs'),
    batch = opt('integer', 8, 'batch size'),
    lr = opt('number', 1e-4, 'Adam learning rate'),
    power = opt('number', 0.9, 'poly schedule power'),
    warmup_epochs = opt('number', 1, 'linear warm-up in epochs'),
    weight_decay = opt('number', 0, 'Adam weight decay'),
    augment = opt('any', 'finetune', "'finetune', 'flips_rotations', 'none' or a table"),
}
S.eval = {
    split = opt('string', 'test', 'the split to report'),
}
M.schema = S

local function is_entry(v) return type(v) == 'table' and v.kind ~= nil and type(v.kind) == 'string' end

local function kind_ok(kind, v)
    if kind == 'any' then return true end
    if kind == 'integer' then return type(v) == 'number' and v % 1 == 0 end
    if kind == 'list' then
        if type(v) ~= 'table' then return false end
        for _, x in ipairs(v) do if type(x) ~= 'number' then return false end end
        return true
    end
    return type(v) == kind
end

local function fail(key, msg) error('autonad: recipe: ' .. key .. ' ' .. msg, 0) end

-- checks t against schema s, filling defaults; records filled keys in filled
local function check(t, s, prefix, filled)
    for k in pairs(t) do
        if s[k] == nil then
            local names = {}
            for n in pairs(s) do names[#names + 1] = n end
            table.sort(names)
            fail(prefix .. tostring(k), 'is not a recipe key (known here: ' .. table.concat(names, ', ') .. ')')
        end
    end
    for k, e in pairs(s) do
        local key = prefix .. k
        if is_entry(e) then
            if t[k] == nil then
                if e.default ~= nil then
                    t[k] = type(e.default) == 'table' and json.decode(json.encode(e.default)) or e.default
                    filled[#filled + 1] = key .. ' = ' .. json.encode(t[k])
                end
            elseif not kind_ok(e.kind, t[k]) then
                fail(key, 'must be ' .. (e.kind == 'list' and 'a list of numbers' or 'a ' .. e.kind) ..
                    ', got ' .. type(t[k]) .. ' ' .. tostring(t[k]))
            end
        else
            if t[k] == nil then t[k] = {} end
            if type(t[k]) ~= 'table' then fail(key, 'must be a table') end
            check(t[k], e, key .. '.', filled)
        end
    end
end

--- Parses "a.b.c=value" (value: a number, true/false, a Lua table literal, else a string) and
--- sets it in t. Errors name the key.
function M.set(t, assignment)
    local key, value = assignment:match('^([%w_%.]+)=(.*)$')
    if not key then error("autonad: --set expects key=value, got '" .. assignment .. "'", 0) end
    local v
    if tonumber(value) then v = tonumber(value)
    elseif value == 'true' or value == 'false' then v = value == 'true'
    elseif value:match('^%s*{') then
        local chunk = loadstring('return ' .. value)
        if not chunk then error('autonad: --set ' .. key .. ': cannot read ' .. value, 0) end
        v = setfenv(chunk, {})()
    else v = value end
    local node, parts = t, {}
    for p in key:gmatch('[^%.]+') do parts[#parts + 1] = p end
    for i = 1, #parts - 1 do
        node[parts[i]] = node[parts[i]] or {}
        node = node[parts[i]]
        if type(node) ~= 'table' then error('autonad: --set ' .. key .. ': ' .. parts[i] .. ' is not a table', 0) end
    end
    node[parts[#parts]] = v
    return t
end

--- Checks a recipe table (after overrides); returns it with defaults filled and the list of
--- defaults that were filled ("key = value").
function M.check(t)
    local filled = {}
    check(t, S, '', filled)
    if t.task ~= 'segmentation' and t.task ~= 'classification' then
        fail('task', "must be 'segmentation' or 'classification', got '" .. t.task .. "'")
    end
    if #t.data.size ~= 2 then fail('data.size', 'must be {height, width}') end
    if t.threads < 1 then fail('threads', 'must be >= 1') end
    t.output = t.output or ('runs/' .. t.name)
    table.sort(filled)
    return t, filled
end

--- Loads a recipe file (a Lua file returning a table), applies overrides ("key=value"
--- strings) and checks it. Returns recipe, filled defaults.
function M.load(path, overrides)
    local chunk, err = loadfile(path)
    if not chunk then
        if not io.open(path, 'r') then error('autonad: no recipe file ' .. path, 0) end
        error('autonad: recipe ' .. path .. ': ' .. tostring(err), 0)
    end
    local ok, t = pcall(chunk)
    if not ok then error('autonad: recipe ' .. path .. ': ' .. tostring(t), 0) end
    if type(t) ~= 'table' then error('autonad: recipe ' .. path .. ' must return a table', 0) end
    for _, o in ipairs(overrides or {}) do M.set(t, o) end
    local r, filled = M.check(t)
    return r, filled, path
end

return M
