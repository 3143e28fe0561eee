-- twinloop: a Wireshark dissector for the two protocols of a twinloop pair.
--
--   twinloop_io    the I/O protocol (plant <-> nodes): frames and outputs, docs/PROTOCOL.md
--   twinloop_sync  the node-to-node sync links, docs/SYNC-PROTOCOL.md (wire version 5)
--
-- Load it with `tshark -X lua_script:tools/wireshark/twinloop.lua` or copy it into
-- ~/.local/lib/wireshark/plugins/. Written for Wireshark 4.0 (Lua 5.2, bit32); no other
-- module is needed. docs/WIRESHARK.md describes the preferences and every field.
--
-- Both protocols are registered on UDP ports (preferences; the defaults are those of
-- configs/*.toml) and as heuristics: an I/O datagram starts with "TL" 01, a sync datagram
-- is version 5 with a CRC-32C that matches, so a pair on other ports is found too.
--
-- The dissector checks what the node checks (runtime/src/io_protocol.rs and wire.rs), in
-- the same order, and says each failure as expert info; it never raises a Lua error on
-- arbitrary bytes (every read is bounded by the datagram first).

local band, bor, bxor, rshift, lshift, rrotate = bit32.band, bit32.bor, bit32.bxor, bit32.rshift, bit32.lshift,
    bit32.rrotate

----------------------------------------------------------------------------------------------
-- CRC-32C (Castagnoli, reflected 0x82F63B78): the same function as the node's crc32c.
----------------------------------------------------------------------------------------------

local CRC32C_TABLE = {}
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        if band(c, 1) ~= 0 then
            c = bxor(rshift(c, 1), 0x82F63B78)
        else
            c = rshift(c, 1)
        end
    end
    CRC32C_TABLE[i] = c
end

-- CRC-32C of a Lua string of bytes.
local function crc32c(s)
    local c = 0xFFFFFFFF
    for i = 1, #s do
        c = bxor(CRC32C_TABLE[band(bxor(c, s:byte(i)), 0xFF)], rshift(c, 8))
    end
    return bxor(c, 0xFFFFFFFF)
end

----------------------------------------------------------------------------------------------
-- BLAKE3 (keyed_hash and derive_key), from the specification: the sync links' MAC is the
-- first 16 bytes of keyed BLAKE3 under a key derived from the key file. Plain Lua on
-- 32-bit words; a sync datagram is at most 1200 bytes, two chunks.
----------------------------------------------------------------------------------------------

local B3_IV = { 0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19 }
local B3_PERM = { 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8 }
local B3_CHUNK_START, B3_CHUNK_END, B3_PARENT, B3_ROOT = 1, 2, 4, 8
local B3_KEYED_HASH, B3_DERIVE_KEY_CONTEXT, B3_DERIVE_KEY_MATERIAL = 16, 32, 64
local B3_BLOCK, B3_CHUNK = 64, 1024
local TWO32 = 4294967296

local function b3_g(v, a, b, c, d, x, y)
    v[a] = (v[a] + v[b] + x) % TWO32
    v[d] = rrotate(bxor(v[d], v[a]), 16)
    v[c] = (v[c] + v[d]) % TWO32
    v[b] = rrotate(bxor(v[b], v[c]), 12)
    v[a] = (v[a] + v[b] + y) % TWO32
    v[d] = rrotate(bxor(v[d], v[a]), 8)
    v[c] = (v[c] + v[d]) % TWO32
    v[b] = rrotate(bxor(v[b], v[c]), 7)
end

-- The compression function; cv and m are 0-based arrays of 8 and 16 words. Returns the
-- 16 output words (0-based): the first 8 are the chaining value.
local function b3_compress(cv, m, counter, block_len, flags)
    local v = {
        [0] = cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
        B3_IV[1], B3_IV[2], B3_IV[3], B3_IV[4],
        counter % TWO32, math.floor(counter / TWO32), block_len, flags,
    }
    local w = {}
    for i = 0, 15 do
        w[i] = m[i]
    end
    for round = 1, 7 do
        b3_g(v, 0, 4, 8, 12, w[0], w[1])
        b3_g(v, 1, 5, 9, 13, w[2], w[3])
        b3_g(v, 2, 6, 10, 14, w[4], w[5])
        b3_g(v, 3, 7, 11, 15, w[6], w[7])
        b3_g(v, 0, 5, 10, 15, w[8], w[9])
        b3_g(v, 1, 6, 11, 12, w[10], w[11])
        b3_g(v, 2, 7, 8, 13, w[12], w[13])
        b3_g(v, 3, 4, 9, 14, w[14], w[15])
        if round < 7 then
            local p = {}
            for i = 0, 15 do
                p[i] = w[B3_PERM[i + 1]]
            end
            w = p
        end
    end
    for i = 0, 7 do
        v[i] = bxor(v[i], v[i + 8])
        v[i + 8] = bxor(v[i + 8], cv[i])
    end
    return v
end

-- 16 little-endian words of the 64-byte block of s starting at 1-based offset at, zero-padded.
local function b3_words(s, at, len)
    local m = {}
    for i = 0, 15 do
        local word = 0
        for j = 3, 0, -1 do
            local k = i * 4 + j
            local byte = 0
            if k < len then
                byte = s:byte(at + k)
            end
            word = word * 256 + byte
        end
        m[i] = word
    end
    return m
end

-- The chaining value of one chunk (everything but its last block compressed), and the
-- inputs of the last block's compression, which the caller finishes (ROOT or not).
local function b3_chunk(key, s, at, len, counter, flags)
    local cv = key
    local blocks = math.max(1, math.ceil(len / B3_BLOCK))
    for b = 0, blocks - 2 do
        local f = flags
        if b == 0 then
            f = bor(f, B3_CHUNK_START)
        end
        local out = b3_compress(cv, b3_words(s, at + b * B3_BLOCK, B3_BLOCK), counter, B3_BLOCK, f)
        cv = { [0] = out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7] }
    end
    local last = (blocks - 1) * B3_BLOCK
    local f = bor(flags, B3_CHUNK_END)
    if blocks == 1 then
        f = bor(f, B3_CHUNK_START)
    end
    return { cv = cv, m = b3_words(s, at + last, len - last), counter = counter, len = len - last, flags = f }
end

local function b3_cv_of(node)
    local out = b3_compress(node.cv, node.m, node.counter, node.len, node.flags)
    return { [0] = out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7] }
end

local function b3_parent(key, left, right, flags)
    local m = {}
    for i = 0, 7 do
        m[i] = left[i]
        m[i + 8] = right[i]
    end
    return { cv = key, m = m, counter = 0, len = B3_BLOCK, flags = bor(flags, B3_PARENT) }
end

-- BLAKE3 of string s with key words `key` (0-based, 8) and mode flags; `out_len` <= 32
-- bytes of the root output, as a string.
local function b3_hash(key, flags, s, out_len)
    local stack = {}
    local chunks = math.max(1, math.ceil(#s / B3_CHUNK))
    local node
    for c = 0, chunks - 1 do
        local at = c * B3_CHUNK
        node = b3_chunk(key, s, at + 1, math.min(B3_CHUNK, #s - at), c, flags)
        if c < chunks - 1 then
            -- Merge completed subtrees: as many as trailing zero bits of the chunk count.
            local cv = b3_cv_of(node)
            local total = c + 1
            while total % 2 == 0 do
                cv = b3_cv_of(b3_parent(key, table.remove(stack), cv, flags))
                total = total / 2
            end
            stack[#stack + 1] = cv
        end
    end
    for i = #stack, 1, -1 do
        node = b3_parent(key, stack[i], b3_cv_of(node), flags)
    end
    local out = b3_compress(node.cv, node.m, node.counter, node.len, bor(node.flags, B3_ROOT))
    local bytes = {}
    for i = 0, out_len - 1 do
        local word = out[math.floor(i / 4)]
        bytes[#bytes + 1] = string.char(band(rshift(word, 8 * (i % 4)), 0xFF))
    end
    return table.concat(bytes)
end

local function b3_key_words(key32)
    local k = {}
    for i = 0, 7 do
        local a, b, c, d = key32:byte(i * 4 + 1, i * 4 + 4)
        k[i] = a + b * 256 + c * 65536 + d * 16777216
    end
    return k
end

local B3_IV0 = { [0] = B3_IV[1], B3_IV[2], B3_IV[3], B3_IV[4], B3_IV[5], B3_IV[6], B3_IV[7], B3_IV[8] }

-- blake3::derive_key(context, material): 32 bytes.
local function blake3_derive_key(context, material)
    local context_key = b3_hash(B3_IV0, B3_DERIVE_KEY_CONTEXT, context, 32)
    return b3_hash(b3_key_words(context_key), B3_DERIVE_KEY_MATERIAL, material, 32)
end

-- blake3::keyed_hash(key32, s), its first out_len bytes.
local function blake3_keyed(key32, s, out_len)
    return b3_hash(b3_key_words(key32), B3_KEYED_HASH, s, out_len)
end

-- blake3::hash(s), 32 bytes (for the self-test below).
local function blake3_hash(s)
    return b3_hash(B3_IV0, 0, s, 32)
end

local function tohex(s)
    return (s:gsub(".", function(ch)
        return string.format("%02x", ch:byte())
    end))
end

-- Known answers, checked at load so that a broken hash says so instead of calling every
-- tag wrong: BLAKE3 of "" and of "abc" (the reference implementation's values).
assert(tohex(blake3_hash("")) == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "twinloop.lua: BLAKE3 self-test failed")
assert(tohex(blake3_hash("abc")) == "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
    "twinloop.lua: BLAKE3 self-test failed")
assert(crc32c("123456789") == 0xE3069283, "twinloop.lua: CRC-32C self-test failed")

-- Outside Wireshark (`lua5.2 tools/wireshark/twinloop.lua`) the file stops here, after the
-- self-tests above, and returns its functions.
local M = {
    crc32c = crc32c,
    blake3_hash = blake3_hash,
    blake3_keyed = blake3_keyed,
    blake3_derive_key = blake3_derive_key,
    tohex = tohex,
}
if Proto == nil then
    -- Loaded by plain Lua (the self-test): no Wireshark API.
    return M
end

----------------------------------------------------------------------------------------------
-- Shared helpers
----------------------------------------------------------------------------------------------

-- The datagram's bytes [from, from+len) as a Lua string.
local function raw(tvb, from, len)
    if len <= 0 then
        return ""
    end
    return tvb:raw(from, len)
end

local function le32(s, at)
    local a, b, c, d = s:byte(at, at + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end

local function epoch_text(epoch)
    -- epoch = term << 8 | node id of the node that started the term
    return string.format("0x%s (term %s, node %d)", epoch:tohex():gsub("^0+(.)", "%1"),
        tostring(epoch:rshift(8)), epoch:band(UInt64(0xFF)):tonumber())
end

----------------------------------------------------------------------------------------------
-- The I/O protocol (docs/PROTOCOL.md)
----------------------------------------------------------------------------------------------

local p_io = Proto("twinloop_io", "twinloop I/O protocol")

-- Kind 3, a level output (an output with its u16 key at 24), since 2026-11-26.
-- Kind 4, an ack (sink -> node, issue 22), since 2026-11-26: its own layout (dissect_ack).
local IO_KINDS = { [1] = "frame", [2] = "output", [3] = "level output", [4] = "ack" }
-- An ack: 24 header bytes, 9 per id (at most 32), a 16-byte tag when flagged, the CRC.
local ACK_HEADER, ACK_ID, ACK_IDS_MAX, ACK_TAG = 24, 9, 32, 16
local ACK_DATAGRAM_MAX = ACK_HEADER + ACK_IDS_MAX * ACK_ID + ACK_TAG + 4
local ACK_TAG_STATUS = { [0] = "invalid", [1] = "valid", [2] = "not verified (no key set)", [3] = "absent" }
local IO_HEADER = { [1] = 16, [2] = 24, [3] = 26 }
local IO_PAYLOAD_MAX = { [1] = 512, [2] = 64, [3] = 64 }
local IO_DATAGRAM_MAX = 532
local CHECK = { [0] = "invalid", [1] = "valid" }

local fio = {
    magic = ProtoField.string("twinloop_io.magic", "Magic"),
    version = ProtoField.uint8("twinloop_io.version", "Version"),
    kind = ProtoField.uint8("twinloop_io.kind", "Kind", base.DEC, IO_KINDS),
    payload_len = ProtoField.uint16("twinloop_io.payload_len", "Payload length"),
    session = ProtoField.uint16("twinloop_io.session", "Source session", base.HEX),
    node_id = ProtoField.uint8("twinloop_io.node_id", "Node id"),
    index = ProtoField.uint8("twinloop_io.index", "Output index"),
    epoch = ProtoField.uint64("twinloop_io.epoch", "Epoch", base.HEX),
    epoch_term = ProtoField.uint64("twinloop_io.epoch.term", "Term"),
    epoch_node = ProtoField.uint8("twinloop_io.epoch.node", "Term started by node"),
    frame = ProtoField.uint64("twinloop_io.frame", "Frame"),
    key = ProtoField.uint16("twinloop_io.key", "Level key"),
    payload = ProtoField.bytes("twinloop_io.payload", "Payload"),
    crc = ProtoField.uint32("twinloop_io.crc", "CRC-32C", base.HEX),
    crc_status = ProtoField.uint8("twinloop_io.crc.status", "CRC-32C status", base.DEC, CHECK),
    crc_computed = ProtoField.uint32("twinloop_io.crc.computed", "CRC-32C computed", base.HEX),
    -- The tank program's payloads (docs/PROTOCOL.md, "Application section").
    ack_count = ProtoField.uint16("twinloop_io.ack.count", "Ids acknowledged"),
    ack_flags = ProtoField.uint8("twinloop_io.ack.flags", "Flags", base.HEX),
    ack_tagged = ProtoField.bool("twinloop_io.ack.flags.tagged", "TAGGED", 8, nil, 0x01),
    ack_reserved = ProtoField.uint8("twinloop_io.ack.reserved", "Reserved"),
    ack_session = ProtoField.uint64("twinloop_io.ack.session", "Sink session", base.HEX),
    ack_seq = ProtoField.uint64("twinloop_io.ack.seq", "Sequence"),
    ack_id = ProtoField.bytes("twinloop_io.ack.id", "Acknowledged id"),
    ack_tag = ProtoField.bytes("twinloop_io.ack.tag", "Tag"),
    ack_tag_status = ProtoField.uint8("twinloop_io.ack.tag.status", "Tag status", base.DEC, ACK_TAG_STATUS),
    ack_tag_computed = ProtoField.bytes("twinloop_io.ack.tag.computed", "Tag computed"),
    tank_layout = ProtoField.uint8("twinloop_io.tank.layout", "Layout"),
    tank_reserved = ProtoField.uint8("twinloop_io.tank.reserved", "Reserved"),
    tank_digital = ProtoField.uint16("twinloop_io.tank.digital", "Digital inputs", base.HEX),
    tank_pump_running = ProtoField.bool("twinloop_io.tank.digital.pump_running", "PUMP_RUNNING", 16, nil, 0x0001),
    tank_suction_low = ProtoField.bool("twinloop_io.tank.digital.suction_low", "SUCTION_LOW", 16, nil, 0x0002),
    tank_level_hh = ProtoField.bool("twinloop_io.tank.digital.level_high_high", "LEVEL_HIGH_HIGH", 16, nil, 0x0004),
    tank_ack = ProtoField.bool("twinloop_io.tank.digital.ack", "ACK", 16, nil, 0x0008),
    tank_auto = ProtoField.bool("twinloop_io.tank.digital.auto", "AUTO", 16, nil, 0x0010),
    tank_estop_ok = ProtoField.bool("twinloop_io.tank.digital.estop_ok", "ESTOP_OK", 16, nil, 0x0020),
    tank_level_um = ProtoField.uint32("twinloop_io.tank.level_um", "Level (um)"),
    tank_pump_flow = ProtoField.uint32("twinloop_io.tank.pump_flow_ml_per_s", "Pump flow (ml/s)"),
    tank_setpoint_um = ProtoField.uint32("twinloop_io.tank.setpoint_um", "Setpoint (um)"),
    tank_demand_flow = ProtoField.uint32("twinloop_io.tank.demand_flow_ml_per_s", "Demand flow (ml/s)"),
    tank_out_kind = ProtoField.uint8("twinloop_io.tank.output_kind", "Output kind", base.DEC,
        { [1] = "actuator command", [2] = "alarm event" }),
    tank_flags = ProtoField.uint8("twinloop_io.tank.flags", "Flags", base.HEX),
    tank_pump_run = ProtoField.bool("twinloop_io.tank.flags.pump_run", "PUMP_RUN", 8, nil, 0x01),
    tank_horn = ProtoField.bool("twinloop_io.tank.flags.horn", "HORN", 8, nil, 0x02),
    tank_interlock = ProtoField.bool("twinloop_io.tank.flags.interlock", "INTERLOCK", 8, nil, 0x04),
    tank_flag_auto = ProtoField.bool("twinloop_io.tank.flags.auto", "AUTO", 8, nil, 0x08),
    tank_speed = ProtoField.uint16("twinloop_io.tank.pump_speed_permille", "Pump speed (permille)"),
    tank_latched = ProtoField.uint16("twinloop_io.tank.alarms_latched", "Alarms latched", base.HEX),
    tank_unacked = ProtoField.uint16("twinloop_io.tank.alarms_unacked", "Alarms unacknowledged", base.HEX),
    tank_totalizer = ProtoField.uint64("twinloop_io.tank.totalizer_ml", "Totalizer (ml)"),
    tank_alarm = ProtoField.uint8("twinloop_io.tank.alarm", "Alarm", base.DEC,
        { [0] = "dry_run", [1] = "high_level", [2] = "low_level", [3] = "pump_fail", [4] = "sensor_fault",
            [5] = "emergency_stop" }),
    tank_event = ProtoField.uint8("twinloop_io.tank.event", "Event", base.DEC,
        { [1] = "raised", [2] = "acknowledged", [3] = "cleared" }),
}
local fio_list = {}
for _, f in pairs(fio) do
    fio_list[#fio_list + 1] = f
end
p_io.fields = fio_list

local eio = {
    too_short = ProtoExpert.new("twinloop_io.too_short", "Datagram too short", expert.group.MALFORMED,
        expert.severity.ERROR),
    too_long = ProtoExpert.new("twinloop_io.too_long", "Datagram too long", expert.group.MALFORMED,
        expert.severity.ERROR),
    bad_magic = ProtoExpert.new("twinloop_io.bad_magic", "Bad magic (not 54 4C)", expert.group.MALFORMED,
        expert.severity.ERROR),
    unknown_version = ProtoExpert.new("twinloop_io.unknown_version", "Unknown version", expert.group.MALFORMED,
        expert.severity.ERROR),
    unknown_kind = ProtoExpert.new("twinloop_io.unknown_kind", "Unknown kind", expert.group.MALFORMED,
        expert.severity.ERROR),
    payload_too_long = ProtoExpert.new("twinloop_io.payload_too_long", "payload_len above the kind's maximum",
        expert.group.MALFORMED, expert.severity.ERROR),
    length_mismatch = ProtoExpert.new("twinloop_io.length_mismatch",
        "Datagram length is not header + payload_len + 4", expert.group.MALFORMED, expert.severity.ERROR),
    bad_checksum = ProtoExpert.new("twinloop_io.bad_checksum", "CRC-32C mismatch", expert.group.CHECKSUM,
        expert.severity.ERROR),
    frame_zero = ProtoExpert.new("twinloop_io.frame_zero", "Frame number 0 (never valid)", expert.group.MALFORMED,
        expert.severity.ERROR),
    index_range = ProtoExpert.new("twinloop_io.index_above_15",
        "Output index above 15: not from a twinloop node (the reference gateway rejects it)",
        expert.group.PROTOCOL, expert.severity.WARN),
    ack_count = ProtoExpert.new("twinloop_io.ack.count_above_32", "Ack count above 32", expert.group.MALFORMED,
        expert.severity.ERROR),
    reserved_not_zero = ProtoExpert.new("twinloop_io.reserved_not_zero",
        "Ack flags other than bit 0, or its reserved byte, not zero", expert.group.MALFORMED, expert.severity.ERROR),
    ack_bad_tag = ProtoExpert.new("twinloop_io.ack.bad_tag", "Ack tag wrong for the key in the preferences",
        expert.group.SECURITY, expert.severity.ERROR),
    ack_untagged = ProtoExpert.new("twinloop_io.ack.untagged", "No ack tag, but a key is set in the preferences",
        expert.group.SECURITY, expert.severity.ERROR),
}
p_io.experts = { eio.too_short, eio.too_long, eio.bad_magic, eio.unknown_version, eio.unknown_kind,
    eio.payload_too_long, eio.length_mismatch, eio.bad_checksum, eio.frame_zero, eio.index_range, eio.ack_count,
    eio.reserved_not_zero, eio.ack_bad_tag, eio.ack_untagged }

p_io.prefs.ports = Pref.range("UDP ports", "7301-7302,7331-7332,7500,7530",
    "UDP ports of frames (frames.bind) and outputs (outputs.sinks); the defaults are those of configs/*.toml",
    65535)
p_io.prefs.ack_key = Pref.string("Ack key", "",
    "The contents of the nodes' outputs.ack_key_file (the gateway's ack_key_file holds the same), " ..
    "surrounding whitespace ignored as the node does; empty: ack tags are shown but not verified")
p_io.prefs.tank = Pref.bool("Decode tank payloads", true,
    "Decode payloads of the demo tank program's layout (docs/PROTOCOL.md, application section) when they fit it")

local function io_epoch(tree, tvb, off)
    local epoch = tvb(off, 8):le_uint64()
    local item = tree:add_le(fio.epoch, tvb(off, 8))
    item:append_text(" (term " .. tostring(epoch:rshift(8)) .. ", node " .. epoch:band(UInt64(0xFF)):tonumber() .. ")")
    item:add(fio.epoch_term, tvb(off, 8), epoch:rshift(8)):set_generated()
    item:add(fio.epoch_node, tvb(off, 1), epoch:band(UInt64(0xFF)):tonumber()):set_generated()
    return epoch
end

local function tank_input(tree, tvb)
    if tvb:len() ~= 20 or tvb(0, 1):uint() ~= 1 or tvb(1, 1):uint() ~= 0 then
        return
    end
    local t = tree:add(tvb(), "Tank input (layout 1)")
    t:add(fio.tank_layout, tvb(0, 1))
    t:add(fio.tank_reserved, tvb(1, 1))
    local d = t:add_le(fio.tank_digital, tvb(2, 2))
    for _, f in ipairs({ fio.tank_pump_running, fio.tank_suction_low, fio.tank_level_hh, fio.tank_ack, fio.tank_auto,
        fio.tank_estop_ok }) do
        d:add_le(f, tvb(2, 2))
    end
    t:add_le(fio.tank_level_um, tvb(4, 4))
    t:add_le(fio.tank_pump_flow, tvb(8, 4))
    t:add_le(fio.tank_setpoint_um, tvb(12, 4))
    t:add_le(fio.tank_demand_flow, tvb(16, 4))
end

local function tank_output(tree, tvb)
    local len = tvb:len()
    if len == 24 and tvb(0, 1):uint() == 1 then
        local t = tree:add(tvb(), "Tank actuator command")
        t:add(fio.tank_out_kind, tvb(0, 1))
        local f = t:add(fio.tank_flags, tvb(1, 1))
        for _, b in ipairs({ fio.tank_pump_run, fio.tank_horn, fio.tank_interlock, fio.tank_flag_auto }) do
            f:add(b, tvb(1, 1))
        end
        t:add_le(fio.tank_speed, tvb(2, 2))
        t:add_le(fio.tank_latched, tvb(4, 2))
        t:add_le(fio.tank_unacked, tvb(6, 2))
        t:add_le(fio.tank_setpoint_um, tvb(8, 4))
        t:add_le(fio.tank_level_um, tvb(12, 4))
        t:add_le(fio.tank_totalizer, tvb(16, 8))
    elseif len == 8 and tvb(0, 1):uint() == 2 then
        local t = tree:add(tvb(), "Tank alarm event")
        t:add(fio.tank_out_kind, tvb(0, 1))
        t:add(fio.tank_alarm, tvb(1, 1))
        t:add(fio.tank_event, tvb(2, 1))
        t:add(fio.tank_reserved, tvb(3, 1))
        t:add_le(fio.tank_level_um, tvb(4, 4))
    end
end

-- The derived ack key for the preference's text, computed once per change.
local ack_derived = { text = nil, key = nil }
local function ack_key()
    local text = (p_io.prefs.ack_key or ""):match("^%s*(.-)%s*$")
    if text == "" then
        return nil
    end
    if ack_derived.text ~= text then
        ack_derived.text = text
        ack_derived.key = blake3_derive_key("twinloop ack key v1", text)
    end
    return ack_derived.key
end

-- An ack (kind 4, docs/PROTOCOL.md "Ack datagram (sink -> node), kind 4"), after the
-- magic, version and kind were read: the node's checks in its order (io_protocol::decode_ack).
local function dissect_ack(tvb, pinfo, tree, fail)
    local len = tvb:len()
    if len < ACK_HEADER + 4 then
        return fail(eio.too_short, "An ack of " .. len .. " bytes, shorter than " .. (ACK_HEADER + 4))
    end
    if len > ACK_DATAGRAM_MAX then
        return fail(eio.too_long, "An ack of " .. len .. " bytes, longer than " .. ACK_DATAGRAM_MAX)
    end
    local count = tvb(4, 2):le_uint()
    tree:add_le(fio.ack_count, tvb(4, 2))
    if count > ACK_IDS_MAX then
        return fail(eio.ack_count, "Ack count " .. count .. " above " .. ACK_IDS_MAX)
    end
    local flags_item = tree:add(fio.ack_flags, tvb(6, 1))
    flags_item:add(fio.ack_tagged, tvb(6, 1))
    tree:add(fio.ack_reserved, tvb(7, 1))
    local flags = tvb(6, 1):uint()
    if flags > 1 or tvb(7, 1):uint() ~= 0 then
        return fail(eio.reserved_not_zero, string.format("Ack flags 0x%02x, reserved %d: only flags bit 0 may be set",
            flags, tvb(7, 1):uint()))
    end
    local tagged = flags == 1
    local body = ACK_HEADER + count * ACK_ID
    local expected = body + (tagged and ACK_TAG or 0) + 4
    if len ~= expected then
        return fail(eio.length_mismatch, "An ack of " .. len .. " bytes, " .. count .. " ids" ..
            (tagged and " and a tag" or "") .. " make " .. expected)
    end
    tree:add_le(fio.ack_session, tvb(8, 8))
    tree:add_le(fio.ack_seq, tvb(16, 8))
    local ids, zero = {}, false
    for i = 0, count - 1 do
        local at = ACK_HEADER + i * ACK_ID
        local frame = tvb(at, 8):le_uint64()
        local id_item = tree:add(fio.ack_id, tvb(at, ACK_ID))
        id_item:set_text(string.format("Acknowledged id (%s, %d)", tostring(frame), tvb(at + 8, 1):uint()))
        id_item:add_le(fio.frame, tvb(at, 8))
        id_item:add(fio.index, tvb(at + 8, 1))
        if frame == UInt64(0) then
            id_item:add_proto_expert_info(eio.frame_zero)
            zero = true
        end
        if i < 4 then
            ids[#ids + 1] = string.format("(%s, %d)", tostring(frame), tvb(at + 8, 1):uint())
        end
    end
    local crc_wire = tvb(len - 4, 4):le_uint()
    local crc_ok = crc32c(raw(tvb, 0, len - 4)) == crc_wire
    local tag_status
    if tagged then
        local tag_item = tree:add(fio.ack_tag, tvb(body, ACK_TAG))
        local key = ack_key()
        if key == nil then
            tag_status = 2
        else
            local computed = blake3_keyed(key, raw(tvb, 0, body), ACK_TAG)
            tag_status = computed == raw(tvb, body, ACK_TAG) and 1 or 0
            if tag_status == 0 then
                tag_item:add(fio.ack_tag_computed, tvb(body, ACK_TAG), computed):set_generated()
                tag_item:add_proto_expert_info(eio.ack_bad_tag)
            end
        end
        tag_item:append_text(" [" .. ACK_TAG_STATUS[tag_status] .. "]")
        tag_item:add(fio.ack_tag_status, tvb(body, ACK_TAG), tag_status):set_generated()
    else
        tag_status = 3
        local item = tree:add(fio.ack_tag_status, tvb(6, 1), tag_status)
        item:set_generated()
        if ack_key() ~= nil then
            item:add_proto_expert_info(eio.ack_untagged)
        end
    end
    local crc_item = tree:add_le(fio.crc, tvb(len - 4, 4))
    crc_item:append_text(crc_ok and " [valid]" or " [invalid]")
    crc_item:add(fio.crc_status, tvb(len - 4, 4), crc_ok and 1 or 0):set_generated()
    if not crc_ok then
        crc_item:add(fio.crc_computed, tvb(len - 4, 4), crc32c(raw(tvb, 0, len - 4))):set_generated()
        crc_item:add_proto_expert_info(eio.bad_checksum)
    end
    local info = string.format("Ack session 0x%s seq %s, %d ids", tvb(8, 8):le_uint64():tohex(),
        tostring(tvb(16, 8):le_uint64()), count)
    if count > 0 then
        info = info .. ": " .. table.concat(ids, " ") .. (count > 4 and " ..." or "")
    end
    if tagged then
        info = info .. " [tag " .. ACK_TAG_STATUS[tag_status] .. "]"
    end
    if not crc_ok then
        info = info .. " [BAD CRC]"
    end
    if zero then
        info = info .. " [FRAME 0]"
    end
    tree:append_text(", ack")
    pinfo.cols.info = info
    return len
end

-- Checks in the order of docs/PROTOCOL.md's table (1-10, 12); returns the bytes consumed.
local function dissect_io(tvb, pinfo, root)
    local len = tvb:len()
    pinfo.cols.protocol = "TL-IO"
    local tree = root:add(p_io, tvb(), "twinloop I/O")
    local function fail(e, text)
        tree:add_proto_expert_info(e, text)
        pinfo.cols.info = "twinloop I/O: " .. text
        return len
    end
    if len < 8 then
        return fail(eio.too_short, "Datagram of " .. len .. " bytes, shorter than 8")
    end
    tree:add(fio.magic, tvb(0, 2))
    tree:add(fio.version, tvb(2, 1))
    tree:add(fio.kind, tvb(3, 1))
    if len > IO_DATAGRAM_MAX then
        return fail(eio.too_long, "Datagram of " .. len .. " bytes, longer than " .. IO_DATAGRAM_MAX)
    end
    if tvb(0, 2):uint() ~= 0x544C then
        return fail(eio.bad_magic, "Bad magic")
    end
    local version, kind = tvb(2, 1):uint(), tvb(3, 1):uint()
    if version ~= 1 then
        return fail(eio.unknown_version, "Unknown version " .. version .. " (this dissector reads version 1)")
    end
    if kind == 4 then
        return dissect_ack(tvb, pinfo, tree, fail)
    end
    local header = IO_HEADER[kind]
    if header == nil then
        return fail(eio.unknown_kind, "Unknown kind " .. kind .. " (1 frame, 2 output, 3 level output, 4 ack)")
    end
    local payload_len = tvb(4, 2):le_uint()
    tree:add_le(fio.payload_len, tvb(4, 2))
    if len < header + 4 then
        return fail(eio.too_short, "A " .. IO_KINDS[kind] .. " datagram of " .. len .. " bytes, shorter than " ..
            (header + 4))
    end
    if len > header + IO_PAYLOAD_MAX[kind] + 4 then
        return fail(eio.too_long, "A " .. IO_KINDS[kind] .. " datagram of " .. len .. " bytes, longer than " ..
            (header + IO_PAYLOAD_MAX[kind] + 4))
    end
    if payload_len > IO_PAYLOAD_MAX[kind] then
        return fail(eio.payload_too_long, "payload_len " .. payload_len .. " above " .. IO_PAYLOAD_MAX[kind])
    end
    if len ~= header + payload_len + 4 then
        return fail(eio.length_mismatch, "Datagram of " .. len .. " bytes, header + payload_len + 4 = " ..
            (header + payload_len + 4))
    end
    local frame
    if kind == 1 then
        tree:add_le(fio.session, tvb(6, 2))
        frame = tvb(8, 8):le_uint64()
        tree:add_le(fio.frame, tvb(8, 8))
    else
        tree:add(fio.node_id, tvb(6, 1))
        local index_item = tree:add(fio.index, tvb(7, 1))
        if tvb(7, 1):uint() > 15 then
            index_item:add_proto_expert_info(eio.index_range)
        end
        io_epoch(tree, tvb, 8)
        frame = tvb(16, 8):le_uint64()
        tree:add_le(fio.frame, tvb(16, 8))
        if kind == 3 then
            tree:add_le(fio.key, tvb(24, 2))
        end
    end
    local payload_tree = tree
    if payload_len > 0 then
        payload_tree = tree:add(fio.payload, tvb(header, payload_len))
    end
    local crc_wire = tvb(len - 4, 4):le_uint()
    local crc_ok = crc32c(raw(tvb, 0, len - 4)) == crc_wire
    local crc_item = tree:add_le(fio.crc, tvb(len - 4, 4))
    crc_item:append_text(crc_ok and " [valid]" or " [invalid]")
    crc_item:add(fio.crc_status, tvb(len - 4, 4), crc_ok and 1 or 0):set_generated()
    if not crc_ok then
        crc_item:add(fio.crc_computed, tvb(len - 4, 4), crc32c(raw(tvb, 0, len - 4))):set_generated()
        crc_item:add_proto_expert_info(eio.bad_checksum)
    end
    if frame == UInt64(0) then
        tree:add_proto_expert_info(eio.frame_zero)
    end
    -- The tank program sends events only: a level's payload is some other program's.
    if p_io.prefs.tank and payload_len > 0 and kind ~= 3 then
        if kind == 1 then
            tank_input(payload_tree, tvb(header, payload_len):tvb())
        else
            tank_output(payload_tree, tvb(header, payload_len):tvb())
        end
    end
    local info
    if kind == 1 then
        info = string.format("Frame %s session 0x%04x, %d payload bytes", tostring(frame), tvb(6, 2):le_uint(),
            payload_len)
    elseif kind == 2 then
        info = string.format("Output frame %s index %d from node %d, epoch %s, %d payload bytes", tostring(frame),
            tvb(7, 1):uint(), tvb(6, 1):uint(), epoch_text(tvb(8, 8):le_uint64()), payload_len)
    else
        info = string.format("Level output frame %s index %d key %d from node %d, epoch %s, %d payload bytes",
            tostring(frame), tvb(7, 1):uint(), tvb(24, 2):le_uint(), tvb(6, 1):uint(),
            epoch_text(tvb(8, 8):le_uint64()), payload_len)
    end
    if not crc_ok then
        info = info .. " [BAD CRC]"
    end
    tree:append_text(", " .. IO_KINDS[kind])
    pinfo.cols.info = info
    return len
end

function p_io.dissector(tvb, pinfo, root)
    return dissect_io(tvb, pinfo, root)
end

local function heur_io(tvb, pinfo, root)
    if tvb:len() < 8 or tvb(0, 2):uint() ~= 0x544C or tvb(2, 1):uint() ~= 1 then
        return false
    end
    local kind = tvb(3, 1):uint()
    if kind ~= 1 and kind ~= 2 then
        return false
    end
    dissect_io(tvb, pinfo, root)
    return true
end

----------------------------------------------------------------------------------------------
-- The sync protocol (docs/SYNC-PROTOCOL.md): framing, then the postcard Envelope.
--
-- The body is described by tables: each message type is one entry of BODIES, a list of
-- fields {name, type, label, extra}; a new message type or field is one more line.
-- Types: u8 (one byte), bool (one byte, 0 or 1), u16/u32/u64 (postcard varints, at most
-- 3/5/10 bytes, last byte at most 3/15/1), enum (a u32 varint index into `extra`),
-- bytes (a varint length at most `extra`, then the bytes), option (00, or 01 then the
-- struct `extra`), struct (the fields of `extra`, nested), variant (a u32 varint index
-- into `extra`, a table of {name, fields}).
----------------------------------------------------------------------------------------------

local p_sync = Proto("twinloop_sync", "twinloop sync protocol")

local SYNC_VERSION = 5
local SYNC_MAX = 1200
local TAG_BYTES = 16
local FLAG_TAGGED = 1

local ROLES = { [0] = "Starting", [1] = "Primary", [2] = "Backup" }
local SYNCS = { [0] = "Joining", [1] = "InSync", [2] = "Lagging", [3] = "NotApplicable" }
local DELAY_REASONS = { [0] = "Joining", [1] = "Lagging" }

local FINGERPRINT = {
    { "program", "u64", "Program (FNV-1a of its name)", base.HEX },
    { "version", "u32", "Program version" },
    { "settings", "u64", "Settings digest", base.HEX },
    { "keyed", "bool", "Keyed (sync key configured)" },
}
local COMMIT_KIND = {
    [0] = { "Ran", {
        { "input_digest", "u64", "Input digest (FNV-1a)", base.HEX },
        { "outputs", "u8", "Outputs" },
        { "sent_mask", "u32", "Sent mask", base.HEX },
        { "output_digest", "u64", "Output digest (FNV-1a)", base.HEX },
    } },
    [1] = { "Skipped", {
        { "last", "u64", "Last skipped frame" },
    } },
}
local STATE_DIGEST = { { "value", "u64", "State digest", base.HEX } }
-- An operator's write (docs/HMI.md; wire version 4).
local HMI_WRITE = {
    { "client", "u32", "Client id", base.HEX },
    { "transaction", "u16", "Transaction id" },
    { "tag", "u16", "Tag index" },
    { "value", "i64", "Value" },
}
-- An event's id, as `Body::Acks` carries it (docs/SYNC-PROTOCOL.md, "Acks").
local ACK_ID = {
    { "frame", "u64", "Frame" },
    { "index", "u8", "Output index" },
}
local COMMIT = {
    { "frame", "u64", "Frame" },
    { "kind", "variant", "Kind", COMMIT_KIND },
    { "state_digest", "option", "State digest", STATE_DIGEST },
    { "writes", "list", "HMI writes", { 4, HMI_WRITE } },
}
local HEADER = {
    { "node_id", "u8", "Node id" },
    { "role", "enum", "Role", ROLES },
    { "epoch", "u64", "Epoch", "epoch" },
    { "sync", "enum", "Sync", SYNCS },
    { "frame", "u64", "Last frame run" },
    { "session", "u64", "Session" },
    { "seq", "u64", "Sequence" },
    { "origin", "u64", "Origin (epoch of the state's cold start)", "epoch" },
}

-- Body variants, by index (docs/SYNC-PROTOCOL.md, "Body variants").
local BODIES = {
    [0] = { "Heartbeat", {
        { "nonce", "u64", "Nonce", base.HEX },
        { "priority", "u8", "Priority" },
        { "sent_ns", "u64", "Sent (ns)" },
        { "echo_ns", "u64", "Echo (ns)" },
        { "echo_hold_ns", "u64", "Echo hold (ns)" },
        { "input_frame", "u64", "Input frame" },
        { "input_age_ms", "u64", "Input age (ms; 18446744073709551615 = none yet)" },
        { "fingerprint", "struct", "Fingerprint", FINGERPRINT },
        { "challenge", "u64", "Challenge (this link; 0 without a key)" },
        { "challenge_echo", "u64", "Challenge echo (the receiver's last challenge heard; 0 = none)" },
    } },
    [1] = { "Probe", { { "id", "u32", "Probe id" } } },
    [2] = { "ProbeAck", { { "id", "u32", "Probe id" } } },
    [3] = { "Commit", { { "commit", "struct", "Commit", COMMIT } } },
    [4] = { "Fetch", { { "frame", "u64", "Frame" } } },
    [5] = { "FrameData", {
        { "commit", "struct", "Commit", COMMIT },
        { "payload", "bytes", "Payload", 512 },
    } },
    [6] = { "JoinRequest", { { "id", "u32", "Transfer id" } } },
    [7] = { "TransferBegin", {
        { "id", "u32", "Transfer id" },
        { "frame", "u64", "Snapshot after frame" },
        { "total_bytes", "u64", "Total bytes" },
        { "chunk_bytes", "u32", "Chunk bytes" },
        { "state_digest", "u64", "State digest", base.HEX },
    } },
    [8] = { "Chunk", {
        { "id", "u32", "Transfer id" },
        { "index", "u32", "Chunk index" },
        { "bytes", "bytes", "Bytes", 1024 },
    } },
    [9] = { "ChunkAck", {
        { "id", "u32", "Transfer id" },
        { "next", "u32", "Next chunk wanted" },
    } },
    [10] = { "SwitchAsk", {
        { "id", "u32", "Switchover id" },
        { "to", "u8", "Target node (0 = any)" },
    } },
    [11] = { "SwitchRequest", {
        { "id", "u32", "Switchover id" },
        { "to", "u8", "Target node (0 = any)" },
    } },
    [12] = { "SwitchAgree", { { "id", "u32", "Switchover id" } } },
    [13] = { "SwitchDelay", {
        { "id", "u32", "Switchover id" },
        { "reason", "enum", "Reason", DELAY_REASONS },
        { "lag_frames", "u64", "Lag (frames)" },
    } },
    [14] = { "SwitchRefuse", { { "id", "u32", "Switchover id" } } },
    [15] = { "SwitchRelease", {
        { "id", "u32", "Switchover id" },
        { "frame", "u64", "Released after frame" },
    } },
    [16] = { "SwitchTaken", {
        { "id", "u32", "Switchover id" },
        { "frame", "u64", "Released frame" },
    } },
    [17] = { "SourceMap", {
        { "session", "u16", "Source session", base.HEX },
        { "source_first", "u64", "Source first frame" },
        { "pair_first", "u64", "Pair frame of source_first" },
    } },
    [18] = { "HmiWrite", HMI_WRITE },
    [19] = { "VoteRequest", {
        { "epoch", "u64", "Epoch asked for", "epoch" },
        { "commit_highest", "u64", "Highest commit held" },
    } },
    [20] = { "Vote", {
        { "epoch", "u64", "Epoch asked for", "epoch" },
        { "granted", "bool", "Granted" },
        { "commit_highest", "u64", "Highest commit held" },
        { "bar", "u64", "Voter's bar (highest epoch seen, granted or asked; wire version 5)", "epoch" },
    } },
    -- Acknowledged events (issue 22; wire version 4): the ids every sink acked.
    [21] = { "Acks", {
        { "ids", "list", "Acknowledged event ids", { 32, ACK_ID } },
    } },
    -- Acked outputs (`[outputs] release = "acked"`, issue 16; wire version 4, new bodies).
    [22] = { "CommitAck", { { "frame", "u64", "Last frame run" } } },
    [23] = { "Released", { { "frame", "u64", "Released up to frame" } } },
}

local BODY_NAMES = {}
for i, b in pairs(BODIES) do
    BODY_NAMES[i] = b[1]
end

local FLAGS = { [0] = "no tag", [1] = "tagged (MAC follows the body)" }
local MAC_STATUS = { [0] = "invalid", [1] = "valid", [2] = "not verified (no key set)", [3] = "absent" }

local fs = {
    version = ProtoField.uint8("twinloop_sync.version", "Version"),
    flags = ProtoField.uint8("twinloop_sync.flags", "Flags", base.HEX, FLAGS),
    header = ProtoField.none("twinloop_sync.header", "Header"),
    type = ProtoField.uint32("twinloop_sync.type", "Message type", base.DEC, BODY_NAMES),
    body = ProtoField.none("twinloop_sync.body", "Body"),
    tag = ProtoField.bytes("twinloop_sync.mac", "MAC tag"),
    mac_status = ProtoField.uint8("twinloop_sync.mac.status", "MAC status", base.DEC, MAC_STATUS),
    mac_computed = ProtoField.bytes("twinloop_sync.mac.computed", "MAC computed"),
    crc = ProtoField.uint32("twinloop_sync.crc", "CRC-32C", base.HEX),
    crc_status = ProtoField.uint8("twinloop_sync.crc.status", "CRC-32C status", base.DEC, CHECK),
    crc_computed = ProtoField.uint32("twinloop_sync.crc.computed", "CRC-32C computed", base.HEX),
    epoch_term = ProtoField.uint64("twinloop_sync.epoch.term", "Term"),
    epoch_node = ProtoField.uint8("twinloop_sync.epoch.node", "Term started by node"),
    leftover = ProtoField.bytes("twinloop_sync.leftover", "Bytes after the body"),
}

-- One ProtoField per field of the tables above, named by its path:
-- twinloop_sync.header.epoch, twinloop_sync.heartbeat.fingerprint.keyed,
-- twinloop_sync.commit.commit.kind.ran.sent_mask, ...
local FIELD_TYPES = {
    u8 = ProtoField.uint8, bool = ProtoField.uint8, u16 = ProtoField.uint16, u32 = ProtoField.uint32,
    u64 = ProtoField.uint64, enum = ProtoField.uint32, variant = ProtoField.uint32,
    i64 = ProtoField.int64,
}
local BOOLS = { [0] = "false", [1] = "true" }

-- A copy of `spec` with a ProtoField (`pf`) on every field, named by its path; shared
-- tables (COMMIT in Commit and FrameData) get one field set per place they appear.
local function declare(prefix, spec)
    local out = {}
    for _, f in ipairs(spec) do
        local name, ty, label, extra = f[1], f[2], f[3], f[4]
        local path = prefix .. "." .. name
        local g = { name, ty, label, extra }
        if ty == "struct" or ty == "option" then
            g.pf = ProtoField.none(path, label)
            g[4] = declare(path, extra)
        elseif ty == "list" then
            g.pf = ProtoField.none(path, label)
            g.pf_len = ProtoField.uint64(path .. ".len", label .. " count")
            g[4] = { extra[1], declare(path, extra[2]) }
        elseif ty == "bytes" then
            g.pf = ProtoField.bytes(path, label)
            g.pf_len = ProtoField.uint64(path .. ".len", label .. " length")
        elseif ty == "variant" then
            local names, variants = {}, {}
            for i, v in pairs(extra) do
                names[i] = v[1]
                variants[i] = { v[1], declare(path .. "." .. v[1]:lower(), v[2]) }
            end
            g.pf = FIELD_TYPES[ty](path, label, base.DEC, names)
            g[4] = variants
        elseif ty == "enum" then
            g.pf = FIELD_TYPES[ty](path, label, base.DEC, extra)
        elseif ty == "bool" then
            g.pf = FIELD_TYPES[ty](path, label, base.DEC, BOOLS)
        else
            local display = base.DEC
            if type(extra) == "number" then
                display = extra
            elseif extra == "epoch" then
                display = base.HEX
            end
            g.pf = FIELD_TYPES[ty](path, label, display)
        end
        out[#out + 1] = g
    end
    return out
end

HEADER = declare("twinloop_sync.header", HEADER)
for i, b in pairs(BODIES) do
    BODIES[i] = { b[1], declare("twinloop_sync." .. b[1]:lower(), b[2]) }
end

local function collect(list, spec)
    for _, f in ipairs(spec) do
        list[#list + 1] = f.pf
        if f.pf_len then
            list[#list + 1] = f.pf_len
        end
        if f[2] == "struct" or f[2] == "option" then
            collect(list, f[4])
        elseif f[2] == "list" then
            collect(list, f[4][2])
        elseif f[2] == "variant" then
            for _, v in pairs(f[4]) do
                collect(list, v[2])
            end
        end
    end
end

local fs_list = {}
for _, f in pairs(fs) do
    fs_list[#fs_list + 1] = f
end
collect(fs_list, HEADER)
for _, b in pairs(BODIES) do
    collect(fs_list, b[2])
end
p_sync.fields = fs_list

local es = {
    too_short = ProtoExpert.new("twinloop_sync.too_short", "Datagram shorter than its framing",
        expert.group.MALFORMED, expert.severity.ERROR),
    too_long = ProtoExpert.new("twinloop_sync.too_long", "Datagram longer than 1200 bytes", expert.group.MALFORMED,
        expert.severity.ERROR),
    unknown_version = ProtoExpert.new("twinloop_sync.unknown_version", "Unknown wire version",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_checksum = ProtoExpert.new("twinloop_sync.bad_checksum", "CRC-32C mismatch", expert.group.CHECKSUM,
        expert.severity.ERROR),
    bad_flags = ProtoExpert.new("twinloop_sync.bad_flags", "Flags other than bit 0 set", expert.group.MALFORMED,
        expert.severity.ERROR),
    bad_mac = ProtoExpert.new("twinloop_sync.bad_mac", "MAC tag wrong for the configured key",
        expert.group.SECURITY, expert.severity.ERROR),
    -- An error: a node with a key rejects it (`unauthenticated`, counted `untagged`).
    untagged = ProtoExpert.new("twinloop_sync.untagged", "No MAC tag, but a key is configured",
        expert.group.SECURITY, expert.severity.ERROR),
    malformed = ProtoExpert.new("twinloop_sync.malformed", "Malformed body", expert.group.MALFORMED,
        expert.severity.ERROR),
    unknown_type = ProtoExpert.new("twinloop_sync.unknown_type", "Unknown message type", expert.group.MALFORMED,
        expert.severity.ERROR),
    leftover = ProtoExpert.new("twinloop_sync.leftover_bytes", "Bytes left over after the body",
        expert.group.MALFORMED, expert.severity.ERROR),
}
p_sync.experts = { es.too_short, es.too_long, es.unknown_version, es.bad_checksum, es.bad_flags, es.bad_mac,
    es.untagged, es.malformed, es.unknown_type, es.leftover }

p_sync.prefs.ports = Pref.range("UDP ports",
    "7101-7102,7111-7112,7201-7202,7211-7212,7601-7602,7611-7612,7701-7702,7711-7712",
    "UDP ports of the sync links (links.bind and bulk_bind, port + 1); the defaults are those of configs/*.toml",
    65535)
p_sync.prefs.key = Pref.string("Sync key", "",
    "The contents of the pair's node.sync_key_file (e.g. the 64 hex digits twinctl keygen writes), " ..
    "surrounding whitespace ignored as the node does; empty: MAC tags are shown but not verified")

-- The derived MAC key for the preference's text, computed once per change.
local derived = { text = nil, key = nil }
local function mac_key()
    local text = (p_sync.prefs.key or ""):match("^%s*(.-)%s*$")
    if text == "" then
        return nil
    end
    if derived.text ~= text then
        derived.text = text
        derived.key = blake3_derive_key("twinloop sync link key v1", text)
    end
    return derived.key
end

-- A bounded reader over the body: every read checks the end first, and a failure is
-- recorded once (the first), as the node's postcard decoder stops at the first.
local Reader = {}
Reader.__index = Reader

local function reader(tvb, from, to)
    return setmetatable({ tvb = tvb, pos = from, limit = to, err = nil }, Reader)
end

local VARINT = { u16 = { 3, 3 }, u32 = { 5, 15 }, u64 = { 10, 1 }, usize = { 10, 1 } }

-- A postcard varint of type ty; returns value (UInt64 for u64/usize, a number otherwise),
-- start and length, or nil after recording the error.
function Reader:varint(ty)
    local max, last_max = VARINT[ty][1], VARINT[ty][2]
    local start = self.pos
    local value = UInt64(0)
    for i = 0, max - 1 do
        if self.pos >= self.limit then
            self.err = self.err or "truncated varint"
            return nil
        end
        local b = self.tvb(self.pos, 1):uint()
        self.pos = self.pos + 1
        value = value:bor(UInt64(band(b, 0x7F)):lshift(7 * i))
        if band(b, 0x80) == 0 then
            if i == max - 1 and b > last_max then
                self.err = self.err or ("varint too large for " .. ty)
                return nil
            end
            if ty == "u64" or ty == "usize" then
                return value, start, self.pos - start
            end
            return value:tonumber(), start, self.pos - start
        end
    end
    self.err = self.err or ("varint longer than " .. max .. " bytes for " .. ty)
    return nil
end

function Reader:byte()
    if self.pos >= self.limit then
        self.err = self.err or "truncated"
        return nil
    end
    local b = self.tvb(self.pos, 1):uint()
    self.pos = self.pos + 1
    return b, self.pos - 1, 1
end

-- Dissects `spec` into tree; returns a table of the values read (by field name), or nil
-- when the body is malformed (r.err says why, and an expert item marks where).
local function read_spec(r, tree, spec, values)
    for _, f in ipairs(spec) do
        local name, ty, extra = f[1], f[2], f[4]
        local v, start, len
        if ty == "u8" or ty == "bool" then
            v, start, len = r:byte()
            if v ~= nil and ty == "bool" and v > 1 then
                r.err = r.err or (f[3] .. ": bool byte " .. v .. " (0 or 1)")
                v = nil
            end
            if v ~= nil then
                tree:add(f.pf, r.tvb(start, len), v)
            end
        elseif ty == "u16" or ty == "u32" or ty == "u64" then
            v, start, len = r:varint(ty)
            if v ~= nil then
                local item = tree:add(f.pf, r.tvb(start, len), v)
                if extra == "epoch" then
                    item:append_text(" (term " .. tostring(v:rshift(8)) .. ", node " ..
                        v:band(UInt64(0xFF)):tonumber() .. ")")
                    item:add(fs.epoch_term, r.tvb(start, len), v:rshift(8)):set_generated()
                    item:add(fs.epoch_node, r.tvb(start, len), v:band(UInt64(0xFF)):tonumber()):set_generated()
                end
            end
        elseif ty == "i64" then
            -- A zigzag varint: (n >> 1) xor -(n & 1).
            local n
            n, start, len = r:varint("u64")
            if n ~= nil then
                local magnitude = Int64(n:rshift(1):lower(), n:rshift(1):higher())
                if n:band(UInt64(1)) == UInt64(1) then
                    v = -magnitude - 1
                else
                    v = magnitude
                end
                tree:add(f.pf, r.tvb(start, len), v)
            end
        elseif ty == "enum" then
            v, start, len = r:varint("u32")
            if v ~= nil then
                tree:add(f.pf, r.tvb(start, len), v)
                if extra[v] == nil then
                    r.err = r.err or (f[3] .. ": unknown value " .. v)
                    v = nil
                end
            end
        elseif ty == "bytes" then
            local n
            n, start, len = r:varint("usize")
            if n ~= nil then
                tree:add(f.pf_len, r.tvb(start, len), n)
                if n > UInt64(extra) then
                    r.err = r.err or (f[3] .. ": " .. tostring(n) .. " bytes, more than " .. extra)
                elseif r.pos + n:tonumber() > r.limit then
                    r.err = r.err or (f[3] .. ": " .. tostring(n) .. " bytes, past the body's end")
                else
                    local count = n:tonumber()
                    if count > 0 then
                        tree:add(f.pf, r.tvb(r.pos, count))
                    else
                        tree:add(f.pf, r.tvb(r.pos, 0))
                    end
                    r.pos = r.pos + count
                    v = n
                end
            end
        elseif ty == "list" then
            local n
            n, start, len = r:varint("usize")
            if n ~= nil then
                tree:add(f.pf_len, r.tvb(start, len), n)
                if n > UInt64(extra[1]) then
                    r.err = r.err or (f[3] .. ": " .. tostring(n) .. " items, more than " .. extra[1])
                else
                    local sub = tree:add(f.pf, r.tvb(start, len))
                    v = n
                    for _ = 1, n:tonumber() do
                        local item = sub:add(f.pf, r.tvb(r.pos, 0))
                        local first = r.pos
                        if read_spec(r, item, extra[2], {}) == nil then
                            v = nil
                            break
                        end
                        item:set_len(r.pos - first)
                    end
                    sub:set_len(r.pos - start)
                end
            end
        elseif ty == "struct" then
            local sub = tree:add(f.pf, r.tvb(r.pos, 0))
            local first = r.pos
            v = read_spec(r, sub, extra, {})
            sub:set_len(r.pos - first)
        elseif ty == "option" then
            local tag
            tag, start, len = r:byte()
            if tag ~= nil then
                local sub = tree:add(f.pf, r.tvb(start, len))
                if tag == 0 then
                    sub:append_text(": None")
                    v = false
                elseif tag == 1 then
                    v = read_spec(r, sub, extra, {})
                    sub:set_len(r.pos - start)
                else
                    r.err = r.err or (f[3] .. ": option tag " .. tag .. " (0 or 1)")
                end
            end
        elseif ty == "variant" then
            local index
            index, start, len = r:varint("u32")
            if index ~= nil then
                local item = tree:add(f.pf, r.tvb(start, len), index)
                local variant = extra[index]
                if variant == nil then
                    r.err = r.err or (f[3] .. ": unknown variant " .. index)
                else
                    local first = start
                    v = read_spec(r, item, variant[2], { variant = variant[1] })
                    item:set_len(r.pos - first)
                end
            end
        end
        if v == nil then
            return nil
        end
        values[name] = v
    end
    return values
end

local function dissect_sync(tvb, pinfo, root)
    local len = tvb:len()
    pinfo.cols.protocol = "TL-SYNC"
    local tree = root:add(p_sync, tvb(), "twinloop sync")
    local problems = {}
    local function fail(item, e, text)
        item:add_proto_expert_info(e, text)
        problems[#problems + 1] = text
    end
    if len < 6 then
        fail(tree, es.too_short, "Datagram of " .. len .. " bytes, shorter than 6")
        pinfo.cols.info = "twinloop sync: " .. problems[1]
        return len
    end
    local version_item = tree:add(fs.version, tvb(0, 1))
    local flags_item = tree:add(fs.flags, tvb(1, 1))
    if len > SYNC_MAX then
        fail(tree, es.too_long, "Datagram of " .. len .. " bytes, longer than " .. SYNC_MAX)
    end
    local version = tvb(0, 1):uint()
    if version ~= SYNC_VERSION then
        fail(version_item, es.unknown_version, "Unknown wire version " .. version ..
            " (this dissector reads version 4; version 3 had no switchover target, no HMI writes and no votes, version 2 no challenge, version 1 no origin or fingerprint)")
    end
    local crc_wire = tvb(len - 4, 4):le_uint()
    local covered = raw(tvb, 0, len - 4)
    local crc_computed = crc32c(covered)
    local crc_ok = crc_computed == crc_wire
    local flags = tvb(1, 1):uint()
    local tagged = band(flags, FLAG_TAGGED) ~= 0
    if band(flags, 0xFE) ~= 0 then
        fail(flags_item, es.bad_flags, "Flags 0x" .. string.format("%02x", flags) .. ": bits other than 0 set")
    end
    local body_end = len - 4
    if tagged then
        body_end = len - 4 - TAG_BYTES
        if body_end < 2 then
            fail(tree, es.too_short, "Tagged datagram of " .. len .. " bytes, too short for its tag")
            body_end = 2
            tagged = false
        end
    end

    -- The body, even after a framing failure (a bad CRC or MAC still shows what it says).
    local body_type
    local values
    if version == SYNC_VERSION and body_end > 2 then
        local r = reader(tvb, 2, body_end)
        local header = tree:add(fs.header, tvb(2, 0))
        local h = read_spec(r, header, HEADER, {})
        header:set_len(r.pos - 2)
        if h ~= nil then
            local body_start = r.pos
            local index, start, ilen = r:varint("u32")
            if index ~= nil then
                local body = tree:add(fs.body, tvb(start, 0))
                body:add(fs.type, tvb(start, ilen), index)
                local b = BODIES[index]
                if b == nil then
                    fail(body, es.unknown_type, "Unknown message type " .. index)
                else
                    body_type = b[1]
                    body:append_text(": " .. b[1])
                    values = read_spec(r, body, b[2], {})
                end
                body:set_len(r.pos - body_start)
            end
            if r.err == nil and values ~= nil and r.pos < body_end then
                tree:add(fs.leftover, tvb(r.pos, body_end - r.pos))
                fail(tree, es.leftover, (body_end - r.pos) .. " bytes left over after the body")
            end
        end
        if r.err ~= nil then
            fail(tree, es.malformed, "Malformed body: " .. r.err .. " (at byte " .. r.pos .. ")")
        end
        values = values or {}
        values.header = h
    elseif version == SYNC_VERSION then
        fail(tree, es.malformed, "Malformed body: empty")
    end

    -- The MAC, then the CRC, as they sit in the datagram.
    local mac_status
    if tagged then
        local tag_item = tree:add(fs.tag, tvb(body_end, TAG_BYTES))
        local key = mac_key()
        if key == nil then
            mac_status = 2
        else
            local expected = blake3_keyed(key, raw(tvb, 0, body_end), TAG_BYTES)
            mac_status = expected == raw(tvb, body_end, TAG_BYTES) and 1 or 0
            if mac_status == 0 then
                tag_item:add(fs.mac_computed, tvb(body_end, TAG_BYTES), expected):set_generated()
                fail(tag_item, es.bad_mac, "MAC tag wrong for the key in the preferences")
            end
        end
        tag_item:append_text(" [" .. MAC_STATUS[mac_status] .. "]")
        tag_item:add(fs.mac_status, tvb(body_end, TAG_BYTES), mac_status):set_generated()
    else
        mac_status = 3
        local item = tree:add(fs.mac_status, tvb(1, 1), mac_status)
        item:set_generated()
        if mac_key() ~= nil then
            fail(item, es.untagged, "No MAC tag, but a key is set in the preferences")
        end
    end
    local crc_item = tree:add_le(fs.crc, tvb(len - 4, 4))
    crc_item:append_text(crc_ok and " [valid]" or " [invalid]")
    crc_item:add(fs.crc_status, tvb(len - 4, 4), crc_ok and 1 or 0):set_generated()
    if not crc_ok then
        crc_item:add(fs.crc_computed, tvb(len - 4, 4), crc_computed):set_generated()
        fail(crc_item, es.bad_checksum, "CRC-32C mismatch")
    end

    local h = values and values.header
    local info = body_type or "?"
    if h ~= nil then
        info = string.format("%s node %d %s epoch %s frame %s seq %s", info, h.node_id, ROLES[h.role],
            epoch_text(h.epoch), tostring(h.frame), tostring(h.seq))
    end
    if tagged then
        info = info .. " [MAC " .. MAC_STATUS[mac_status] .. "]"
    end
    if #problems > 0 then
        info = info .. " [" .. problems[1] .. "]"
    end
    tree:append_text(", " .. (body_type or "undecoded"))
    pinfo.cols.info = info
    return len
end

function p_sync.dissector(tvb, pinfo, root)
    return dissect_sync(tvb, pinfo, root)
end

-- A sync datagram has no magic: version 4, flags 0 or 1, a length in range and a CRC-32C
-- that matches (one chance in 2^32 for other traffic).
local function heur_sync(tvb, pinfo, root)
    local len = tvb:len()
    if len < 6 or len > SYNC_MAX or tvb(0, 1):uint() ~= SYNC_VERSION or tvb(1, 1):uint() > 1 then
        return false
    end
    if crc32c(raw(tvb, 0, len - 4)) ~= tvb(len - 4, 4):le_uint() then
        return false
    end
    dissect_sync(tvb, pinfo, root)
    return true
end

----------------------------------------------------------------------------------------------
-- Registration: UDP ports (preferences, changes applied at once) and heuristics.
----------------------------------------------------------------------------------------------

local udp_port = DissectorTable.get("udp.port")
local registered = { io = nil, sync = nil }

local function register_ports()
    if registered.io ~= nil and registered.io ~= "" then
        udp_port:remove(registered.io, p_io)
    end
    if registered.sync ~= nil and registered.sync ~= "" then
        udp_port:remove(registered.sync, p_sync)
    end
    registered.io = tostring(p_io.prefs.ports)
    registered.sync = tostring(p_sync.prefs.ports)
    if registered.io ~= "" then
        udp_port:add(registered.io, p_io)
    end
    if registered.sync ~= "" then
        udp_port:add(registered.sync, p_sync)
    end
end

p_io.prefs_changed = register_ports
p_sync.prefs_changed = register_ports
register_ports()
udp_port:add_for_decode_as(p_io)
udp_port:add_for_decode_as(p_sync)
p_io:register_heuristic("udp", heur_io)
p_sync:register_heuristic("udp", heur_sync)
