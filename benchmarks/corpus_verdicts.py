"""Why each real plugin PDS refuses is refused: a judgement per refusal, made by reading the
verifier's log and the plugin's source (p-quic/pquic `plugins/`, pluginized-protocols/
xbgp_plugins), recorded here so the benchmarks can print it next to every refusal.

A rule matches one failure item (a refusal line of `pds dev import/build/submit`, a line of a
verifier's log: a refused instruction, a side-effect verdict, a static finding, a loop verdict)
by the verifier's name and a regular expression, and gives its class and why:

- `plugin`: a property of the plugin as its developers wrote and build it (PQUIC's own Makefile
  fails too, the code calls what the VM cannot run, writes what its protoop does not own, loops
  on state nothing bounds); not something a PDS config could grant without accepting that
  property;
- `verifier limitation`: the plugin may well be fine, our verifier cannot show it (say so, and
  what would).

A failure item no rule matches is `unclassified`: the benchmark prints it in full, and a new one
means a judgement is owed. The rules name no corpus code; their texts say what the code does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLUGIN = "plugin"
LIMITATION = "verifier limitation"
UNCLASSIFIED = "unclassified"


@dataclass(frozen=True)
class Rule:
    verifier: str  # "build", "import", "submit" or a verifier's name
    pattern: str  # searched in the failure item
    cls: str
    why: str


_LIST_WALK = ("walks a linked list until a NULL next pointer (`while (p) p = p->next`); it ends only if the "
              "list is finite and acyclic, which the pluglet's code does not ensure (PQUIC's or the plugin's "
              "heap decides)")

RULES: tuple[Rule, ...] = (
    # ------------------------------------------------------------------ build (PQUIC)
    Rule("build", r"Unsupport signed division", PLUGIN,
         "update_rtt.c divides a signed value (sdiv), which the BPF backend cannot compile; PQUIC's own "
         "Makefile pipeline fails on it with the same llc"),
    Rule("build", r"too many args to .*helper_check_spurious_retransmission", PLUGIN,
         "process_mp_ack_frame.c calls a 6-argument function; BPF passes at most 5 in registers, so llc "
         "refuses it; PQUIC's own Makefile pipeline fails on it too"),
    Rule("build", r"conflicting types for 'set_cnx_metadata'|retransmit_needed\.o failed at clang", PLUGIN,
         "tlp's sources declare set_cnx_metadata with another type than picoquic/getset.h; clang refuses "
         "the file in PQUIC's own Makefile pipeline too"),
    # ------------------------------------------------------------------ safety
    Rule("safety", r"local call without a relocation", PLUGIN,
         "a call to a function of the pluglet's own (a BPF-to-BPF call, `call` with src=1): PQUIC's uBPF "
         "has no local calls and reads the immediate as a helper id, so the pluglet would call a random "
         "helper; the object is byte for byte what PQUIC's Makefile builds"),
    # ------------------------------------------------------------------ side effects (PQUIC)
    Rule("side_effects", r"\(host\.io\) is not allowed", PLUGIN,
         "acts on the host outside QUIC (sockets, files, descriptors: socket/connect/send/write/close/"
         "setsockopt/lseek/dprintf...); no protoop is for that, so the spec grants host.io to none "
         "(a PV accepting such plugins grants it in its own spec)"),
    Rule("side_effects", r"picoquic_reinsert_cnx_by_wake_time\(cnx\.next_wake_time\) is not allowed in protoop "
         r"(process_frame|prepare_packet_ready)", PLUGIN,
         "datagram reschedules the connection's wake time (its delivery deadlines) from a frame handler and "
         "from its packet-preparation hook; set_next_wake_time is the protoop that owns it"),
    Rule("side_effects", r"picoquic_create_path\(cnx\.path\) is not allowed in protoop write_frame|"
         r"set_path\(path\.challenge_verified\) is not allowed in protoop write_frame", PLUGIN,
         "multipath's MP_NEW_CONNECTION_ID writer creates a receive path and marks it validated "
         "(challenge_verified = 1, 'Don't validate receive path') without a PATH_CHALLENGE: a frame "
         "writer that bypasses path validation"),
    Rule("side_effects", r"set_path\(path\.bytes_in_transit\) is not allowed in protoop congestion_algorithm_notify",
         PLUGIN,
         "westwood's congestion controller writes path.bytes_in_transit (back the value it read on entry), "
         "which PQUIC's sender owns; a congestion controller sets the window, not the bytes in flight"),
    Rule("side_effects", r"set_cnx\(cnx\.(start_time|latest_progress_time)\) is not allowed in protoop "
         r"get_set_cnx_fields_loop", PLUGIN,
         "microbench's get/set benchmark overwrites the connection's start and progress times"),
    # ------------------------------------------------------------------ static (cppcheck)
    Rule("static", r"helpers\.h:422: error: Array 'outs\[2\]' accessed at index 2", PLUGIN,
         "PQUIC's shared helpers.h: helper_retransmit_needed declares `protoop_arg_t outs[2]` and reads "
         "outs[2] (a real out-of-bounds read, in code the pluglet reaches)"),
    Rule("static", r"helpers\.h:180: warning: Either the condition 'timer_based_retransmit' is redundant", PLUGIN,
         "PQUIC's shared helpers.h: helper_retransmit_needed_by_packet dereferences timer_based_retransmit "
         "(line 178) before testing it for NULL (line 180): the code contradicts itself"),
    Rule("static", r"rlc_fec_scheme_gf256\.c:77: warning: .*accessed at index -1", PLUGIN,
         "gaussElimination's back-substitution `while (a[i][candidate] == 0 && candidate >= 0) candidate--;` "
         "reads a[i][-1] before the test and then x[candidate] with candidate -1"),
    Rule("static", r"rlc_fec_scheme_gf256\.c:186: error: Array 'fec_block->repair_symbols\[100\]' accessed at "
         r"index -1", PLUGIN,
         "fec_recover reads repair_symbols[first_notnull_rs] where first_notnull_rs stays -1 when the block "
         "has no repair symbol"),
    # ------------------------------------------------------------------ loops (termination)
    # Pass since termination 5 (no rule): no_pacing's `pc < 3` loop (line 251), xBGP's filter_odd_as
    # (line 55) and as_path_count (line 76) by a ranking function; fec_recover's and
    # fec_generate_repair_symbols' vectorised self-loops (line 24/25) as never entered (the test
    # before them is decided by the 15-bit masks of its operands).
    Rule("termination", r"schedule_next_stream, loop %\d+ \(line (25|37)\)", PLUGIN, _LIST_WALK + " (streams)"),
    Rule("termination", r"\(line 123\).*set_next_wake_time|set_next_wake_time, loop %\d+ \(line 123\)", PLUGIN,
         _LIST_WALK + " (packets: `while (p != NULL && ...) p = get_pkt(p, AK_PKT_NEXT_PACKET)`)"),
    Rule("termination", r"prepare_packet_ready, loop %\d+ \(line 157 of [^)]*fec_protoops\.h\)", PLUGIN,
         _LIST_WALK + " (the retransmit queue, `while (b->size > 0 && current_packet)`)"),
    Rule("termination", r"packet_payload_to_source_symbol, loop %\d+ \(line 26\)", PLUGIN,
         "`while (offset < payload_length) { helper_skip_frame(..., &consumed, ...); offset += consumed; }` "
         "ignores helper_skip_frame's failure: when it consumes nothing the loop never ends"),
    Rule("termination", r"(window_flush_repair_symbols|fec_protect_source_symbol), loop %\d+ "
         r"\(line 151 of [^)]*window_framework_sender\.h\)", PLUGIN,
         "reserve_fec_frames' `while (wff->repair_symbols_queue_length != 0)`: progress depends on what the "
         "queue functions do with the plugin's heap; the authors mark it `//TODO: currently unprovable`"),
    Rule("termination", r"state_changed, loop %\d+ \(line (159|294) of bpf\.h\)", PLUGIN,
         _LIST_WALK + " (monitoring's unknown transport parameters)"),
    Rule("termination", r"log_event, loop %\d+ \(line 99 of bpf\.h\)", PLUGIN,
         _LIST_WALK + " (qlog's context stack, `while (c && ofs < ctx_size)` with ofs from snprintf)"),
    Rule("termination", r"segment_(received|prepared), loop %\d+ \(line (238|254) of [^)]*bpf\.h\)", PLUGIN,
         _LIST_WALK + " (qlog's frame list)"),
    Rule("termination", r"segment_aborted, loop %\d+ \(line 9\)", PLUGIN, _LIST_WALK + " (qlog's frame list)"),
    Rule("termination", r"segment_prepared, loop %\d+ \(line 15\)", PLUGIN,
         "`while (ret == 0 && consumed < len) { ret = helper_skip_frame(..., &skip_consumed, ...); consumed += "
         "skip_consumed; }`: a frame skipped as 0 bytes with ret 0 never ends it"),
    Rule("termination", r"set_output_file, loop %\d+ \(line 121 of bpf\.h\)", PLUGIN,
         _LIST_WALK + " (qlog's pending events, inlined from append_event)"),
    Rule("termination", r"get_max_message_size, loop %\d+ \(line 87 of bpf\.h\)|send_datagram_frame, loop %\d+ "
         r"\(line 87 of bpf\.h\)|process_datagram_frame, loop %\d+ \(line 100 of bpf\.h\)", PLUGIN,
         "`for (uint16_t i = 0; i < nb_paths; i++)` with an int nb_paths: a 16-bit counter against a wider "
         "bound never ends when nb_paths > 65535"),
    Rule("termination", r"(process_datagram_frame|op_process_datagram_buffer), loop %\d+ \(line (142|157) "
         r"of bpf\.h\)", PLUGIN, _LIST_WALK + " (datagram's receive buffer)"),
    Rule("termination", r"process_datagram_frame, loop %\d+ \(line 180 of bpf\.h\)", PLUGIN,
         "part of the line-18 retry loop (its `continue` paths make clang lay it out as two loops; this "
         "header is in the inlined send_head_datagram_buffer): ends only if the receive buffer is finite"),
    Rule("termination", r"send_datagram_frame, loop %\d+ \(line 218 of bpf\.h\)", PLUGIN,
         "`while (p == NULL && m->send_buffer > 0) { free_head_datagram_reserved(...); p = my_malloc(...); }`: "
         "each try cancels one reservation block (send_buffer drops by its frames' lengths, to 0 once the "
         "queue is empty): it ends only if PQUIC's reservation queue is finite, like a list walk"),
    Rule("termination", r"send_datagram_frame, loop %\d+ \(line 196 of bpf\.h\)", PLUGIN,
         "the retry loop of line 218 again (its header is the inlined free_head_datagram_reserved's "
         "cancel_head_reservation call, line 196; the inner `for (i < nb_frames)` is counted)"),
    Rule("termination", r"process_datagram_frame, loop %\d+ \(line 18\)", PLUGIN,
         "a retry loop around my_malloc (`do { ... send_head_datagram_buffer(...) ... } while (alloc failed && "
         "m->datagram_buffer != NULL)`): each failed try delivers the buffer's head; it ends only if that "
         "list is finite"),
    Rule("termination", r"schedule_frames_on_path, loop %\d+ \(line (247|276)\)", PLUGIN,
         "the stream-frame filling loops of basic's scheduler: `while (stream != NULL ...)` over the stream "
         "list returned by a protoop each iteration (a list walk, progress decided by another protoop)"),
)


XBGP_RULES: tuple[Rule, ...] = (
    Rule("import", r"pluglet 'customer_provider_validator\.c' must be an object file", PLUGIN,
         "the manifest's obj is the C source, not the eBPF object libxbgp loads: libxbgp cannot load it"),
    Rule("import", r"code 'filter_non_valley_free' is not in obj_code_list", PLUGIN,
         "an insertion point names a code the manifest does not define: libxbgp finds no pluglet to insert"),
    Rule("import", r"unknown top-level key\(s\) 'jobs_plugins'", PLUGIN,
         "a misspelt top-level key (jobs_plugins for job_plugin): libxbgp ignores it and then finds neither "
         "insertion points nor a job, so it loads nothing"),
    Rule("build", r"use of undeclared identifier 'AS_PATH_ATTR_CODE'", PLUGIN,
         "prefix_validator.c uses AS_PATH_ATTR_CODE but includes common_security.h, which defines it, only "
         "under #ifdef PROVERS; its Makefile does not define PROVERS and fails the same way"),
    Rule("safety", r"call to bcmp, which is not on the helper allow-list", PLUGIN,
         "clang turns the plugin's own strncmp/memcmp into a call to bcmp, which libxbgp does not register "
         "(xbgp_plugins' Makefile objects make the same call, corpus.py checks): the pluglet would not load"),
    Rule("side_effects", r"calls bcmp, a helper with no libxbgp attributes", PLUGIN,
         "the same bcmp call: not a libxbgp helper, so no permission can cover it"),
)


def classify(verifier: str, item: str) -> tuple[str, str]:
    for rule in RULES + XBGP_RULES:
        if rule.verifier == verifier and re.search(rule.pattern, item):
            return rule.cls, rule.why
    return UNCLASSIFIED, ""


def failure_items(verifier: str, reason: str, log: str) -> list[str]:
    """The lines of a failed verifier's log that are its failures (each judged alone), or its
    reason when the log names none."""
    if verifier in ("termination", "bounded"):
        items = [ln for ln in log.splitlines() if ": fail: " in ln or ": error: " in ln]
    elif verifier == "safety":
        items = [ln for ln in log.splitlines() if re.search(r"^\S+: #\d+: ", ln)]
    elif verifier == "side_effects":
        items = [ln for ln in log.splitlines() if " is not allowed in protoop " in ln or "cannot judge" in ln
                 or " with unknown key " in ln or "non-constant key" in ln]
    elif verifier == "static":
        items = [ln for ln in log.splitlines() if ln.startswith("finding ")]
    else:
        items = []
    return items or [reason]
