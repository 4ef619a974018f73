"""The functional-coverage model, as data.

Every bin is named after the spec: a section anchor (``§P2IOVA``,
``§DC_MISCONFIG`` ...), a rule number, or a row of one of the spec's tables
(CAUSE and TTYP encodings, the ``IOTINVAL.VMA`` operand table ...).  Bins are
grouped; each :class:`Group` says which events and which of their fields
decide its bins (:attr:`Group.decided_by`), so that a reader can check a bin
against the event stream by hand.

The model is a plain tuple of groups (:data:`MODEL`); :data:`BINS` maps each
bin name to its :class:`Bin`.  Names are stable: a report of an older run
still merges with a newer one (bins the model no longer has are kept and
reported apart).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict, Iterable, Tuple

from ..ddt import DC_RULES
from ..gipc import GIPC_PC_RULES
from ..pdt import PC_RULES
from ..types import Cause, Ttyp

__all__ = [
    "Bin",
    "Group",
    "MODEL",
    "BINS",
    "MODEL_ID",
    "CAUSE_TTYPS",
    "S_MODES",
    "G_MODES",
    "PTE_FAULTS",
    "STRUCTURES",
    "REVISIONS",
    "GIPC_SHARED",
    "GIPC_REVISION_ROWS",
    "HPM_EVENTS",
    "group_of",
]


@dataclass(frozen=True)
class Bin:
    """One coverage bin: a stable ``name``, the ``spec`` section / rule / table
    row it stands for, and a sentence saying what hits it."""

    name: str
    group: str
    spec: str
    text: str


@dataclass(frozen=True)
class Group:
    """A group of bins with the events (and their fields) that decide them."""

    name: str
    title: str
    spec: str
    decided_by: str
    bins: Tuple[Bin, ...]


# --------------------------------------------------------------------------
# CAUSE x TTYP
# --------------------------------------------------------------------------
_U = (Ttyp.UNTRANSLATED_EXECUTE, Ttyp.UNTRANSLATED_READ, Ttyp.UNTRANSLATED_WRITE)
_T = (Ttyp.TRANSLATED_EXECUTE, Ttyp.TRANSLATED_READ, Ttyp.TRANSLATED_WRITE)
_ATS = (Ttyp.ATS_TRANSLATION,)
_MSG = (Ttyp.PCIE_MESSAGE,)
_REQ = _U + _T + _ATS

#: Every CAUSE with the TTYPs it can occur with (§P2IOVA, §ATS_FAULTS, §ATS_PRI,
#: the Fault/Event-Queue record).  Translated requests never select a process
#: context and their first stage is Bare (§P2IOVA steps 8-9), so no page fault
#: or PDT cause; an ATS Translation Request walks as a read and reports the
#: fault for the access it asked for (§ATS_FAULTS); PCIe messages (Page Request,
#: Invalidation Completion) fault only while locating the device context.
CAUSE_TTYPS: Dict[int, Tuple[int, ...]] = {
    Cause.INSTRUCTION_ACCESS_FAULT: (Ttyp.UNTRANSLATED_EXECUTE, Ttyp.TRANSLATED_EXECUTE) + _ATS,
    # page-crossing requests (docs/translation.md): an execute is a read
    Cause.READ_ADDRESS_MISALIGNED: (
        Ttyp.UNTRANSLATED_EXECUTE,
        Ttyp.UNTRANSLATED_READ,
        Ttyp.TRANSLATED_EXECUTE,
        Ttyp.TRANSLATED_READ,
    ),
    Cause.READ_ACCESS_FAULT: (Ttyp.UNTRANSLATED_READ, Ttyp.TRANSLATED_READ) + _ATS,
    Cause.WRITE_ADDRESS_MISALIGNED: (Ttyp.UNTRANSLATED_WRITE, Ttyp.TRANSLATED_WRITE),
    Cause.WRITE_ACCESS_FAULT: (Ttyp.UNTRANSLATED_WRITE, Ttyp.TRANSLATED_WRITE) + _ATS,
    Cause.INSTRUCTION_PAGE_FAULT: (Ttyp.UNTRANSLATED_EXECUTE,) + _ATS,
    Cause.READ_PAGE_FAULT: (Ttyp.UNTRANSLATED_READ,) + _ATS,
    Cause.WRITE_PAGE_FAULT: (Ttyp.UNTRANSLATED_WRITE,) + _ATS,
    Cause.INSTRUCTION_GUEST_PAGE_FAULT: (Ttyp.UNTRANSLATED_EXECUTE, Ttyp.TRANSLATED_EXECUTE) + _ATS,
    Cause.READ_GUEST_PAGE_FAULT: (Ttyp.UNTRANSLATED_READ, Ttyp.TRANSLATED_READ) + _ATS,
    Cause.WRITE_GUEST_PAGE_FAULT: (Ttyp.UNTRANSLATED_WRITE, Ttyp.TRANSLATED_WRITE) + _ATS,
    Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED: _REQ + _MSG,
    Cause.DDT_ENTRY_LOAD_ACCESS_FAULT: _REQ + _MSG,
    Cause.DDT_ENTRY_NOT_VALID: _REQ + _MSG,
    Cause.DDT_ENTRY_MISCONFIGURED: _REQ + _MSG,
    Cause.TRANSACTION_TYPE_DISALLOWED: _REQ + _MSG,
    Cause.MSI_PTE_LOAD_ACCESS_FAULT: _REQ,
    Cause.MSI_PTE_NOT_VALID: _REQ,
    Cause.MSI_PTE_MISCONFIGURED: _REQ,
    # the IOMMU records an MSI in an MRIF for a write with data (not for ATS)
    Cause.MRIF_ACCESS_FAULT: (Ttyp.UNTRANSLATED_WRITE, Ttyp.TRANSLATED_WRITE),
    Cause.PDT_ENTRY_LOAD_ACCESS_FAULT: _U + _ATS,
    Cause.PDT_ENTRY_NOT_VALID: _U + _ATS,
    Cause.PDT_ENTRY_MISCONFIGURED: _U + _ATS,
    Cause.DDT_DATA_CORRUPTION: _REQ + _MSG,
    Cause.PDT_DATA_CORRUPTION: _U + _ATS,
    Cause.MSI_PT_DATA_CORRUPTION: _REQ,
    Cause.MSI_MRIF_DATA_CORRUPTION: (Ttyp.UNTRANSLATED_WRITE, Ttyp.TRANSLATED_WRITE),
    Cause.INTERNAL_DATAPATH_ERROR: _REQ,
    Cause.IOMMU_MSI_WRITE_ACCESS_FAULT: (Ttyp.NONE,),
    Cause.PT_DATA_CORRUPTION: _REQ,
}


def _cause_bins() -> Iterable[Bin]:
    for cause, ttyps in CAUSE_TTYPS.items():
        c = Cause(cause)
        for t in ttyps:
            yield Bin(
                f"cause.{int(c)}.ttyp.{int(t)}",
                "cause",
                f"Fault record CAUSE {int(c)} x TTYP {int(t)}",
                f"{c.description} detected for TTYP {int(t)} ({Ttyp(t).name.lower()})",
            )


# --------------------------------------------------------------------------
# DC and PC configuration checks
# --------------------------------------------------------------------------
def _dc_rule_bins() -> Iterable[Bin]:
    for n, text in DC_RULES.items():
        where = "docs/gipc.md decisions #3/#4" if text.startswith("[GIPC]") else "§DC_MISCONFIG"
        yield Bin(f"dc.rule.{n}", "dc_rules", f"{where} rule {n}", f"a valid DC fails: {text}")


def _pc_rule_bins() -> Iterable[Bin]:
    for n, text in PC_RULES.items():
        yield Bin(
            f"pc.rule.{n}", "pc_rules", f"§PC_MISCONFIG rule {n}", f"a valid PC fails: {text}"
        )
    for n, text in GIPC_PC_RULES.items():
        yield Bin(
            f"pc.rule.{n}",
            "pc_rules",
            f"docs/gipc.md decision #7 (rule {n})",
            f"a valid PC fails: {text}",
        )


# --------------------------------------------------------------------------
# directories
# --------------------------------------------------------------------------
def _directory_bins() -> Iterable[Bin]:
    for levels, name in ((1, "1LVL"), (2, "2LVL"), (3, "3LVL")):
        yield Bin(
            f"ddt.{name}",
            "directories",
            f"§GET_DC, ddtp.iommu_mode {name}",
            f"a DC located through a {levels}-level DDT",
        )
    yield Bin(
        "ddt.dc.base",
        "directories",
        "§Device-context: base format (capabilities.MSI_FLAT=0)",
        "a 32-byte DC read",
    )
    yield Bin(
        "ddt.dc.extended",
        "directories",
        "§Device-context: extended format (capabilities.MSI_FLAT=1)",
        "a 64-byte DC read",
    )
    for mode in ("PD8", "PD17", "PD20"):
        yield Bin(
            f"pdt.{mode}",
            "directories",
            f"§GET_PC, pdtp.MODE {mode}",
            f"a PC located through a {mode} process directory",
        )


# --------------------------------------------------------------------------
# first stage and G-stage
# --------------------------------------------------------------------------
#: first-stage modes by number of levels (Sv32 when the root level is 1)
S_MODES: Dict[int, str] = {2: "Sv32", 3: "Sv39", 4: "Sv48", 5: "Sv57"}
#: G-stage modes by number of levels
G_MODES: Dict[int, str] = {2: "Sv32x4", 3: "Sv39x4", 4: "Sv48x4", 5: "Sv57x4"}

#: Why a walk stopped at a PTE (Privileged spec "Virtual Address Translation
#: Process", cited as PTW steps), or before reading one.
PTE_FAULTS: Dict[str, Tuple[str, str]] = {
    "invalid": ("PTW step 3", "a PTE with V=0"),
    "w_without_r": ("PTW step 3", "the reserved encoding W=1, R=0"),
    "reserved_bits": ("PTW step 3", "PTE bits 58:54 (reserved) set"),
    "rsw60t59b_reserved": ("PTW step 3, Svrsw60t59b", "PTE bits 60:59 set without Svrsw60t59b"),
    "pbmt_reserved": ("PTW step 3, Svpbmt", "PBMT=3 (reserved) in a leaf"),
    "napot_reserved": ("PTW step 3, Svnapot", "N=1 with a reserved NAPOT encoding or level"),
    "nonleaf_attr": ("PTW step 3", "D, A, U, N or PBMT set in a non-leaf PTE"),
    "no_leaf": ("PTW step 4", "a pointer PTE at level 0"),
    "misaligned_superpage": ("PTW step 6", "a misaligned superpage"),
    "permission": ("PTW step 5", "the leaf denies the access (R/W/X)"),
    "ad_disabled": ("PTW step 7", "A or D needs setting and hardware A/D updating is off"),
}


def _stage_bins(stage: str) -> Iterable[Bin]:
    g = stage == "g"
    grp = "g_stage" if g else "s_stage"
    modes = G_MODES if g else S_MODES
    what = "G-stage" if g else "first-stage"
    enable = "DC.tc.GADE" if g else "DC.tc.SADE"
    for levels, mode in modes.items():
        for level in range(levels):
            yield Bin(
                f"{stage}.{mode}.leaf{level}",
                grp,
                f"{'iohgatp' if g else 'iosatp'}.MODE {mode}, leaf at level {level}",
                f"a {what} walk ends with a leaf PTE at level {level}",
            )
    yield Bin(
        f"{stage}.napot64k",
        grp,
        "Svnapot: N=1, PPN[3:0]=1000 at level 0",
        f"a {what} leaf maps a 64 KiB NAPOT page",
    )
    for v, name in ((0, "PMA"), (1, "NC"), (2, "IO")):
        yield Bin(
            f"{stage}.pbmt.{name}",
            grp,
            f"Svpbmt: PBMT={v} ({name})",
            f"a valid {what} leaf with PBMT={v}",
        )
    for bit in (59, 60):
        yield Bin(
            f"{stage}.rsw.bit{bit}",
            grp,
            f"Svrsw60t59b: PTE bit {bit}",
            f"a {what} leaf with bit {bit} set",
        )
    yield Bin(
        f"{stage}.ad.A",
        grp,
        f"§IOMMU updating of PTE A/D ({enable}=1)",
        f"the IOMMU sets A in a {what} leaf",
    )
    yield Bin(
        f"{stage}.ad.D",
        grp,
        f"§IOMMU updating of PTE A/D ({enable}=1)",
        f"the IOMMU sets D in a {what} leaf",
    )
    for name, (spec, text) in PTE_FAULTS.items():
        fault = "guest-page fault" if g else "page fault"
        yield Bin(f"{stage}.fault.{name}", grp, spec, f"{fault}: {text}")
    if g:
        yield Bin(
            "g.fault.u0",
            grp,
            "PTW step 5 (G-stage accesses are user accesses)",
            "guest-page fault: a G-stage leaf with U=0",
        )
        yield Bin(
            "g.fault.gpa_too_wide",
            grp,
            "§iohgatp: GPA bits beyond the x4 mode width",
            "guest-page fault: the GPA is wider than the G-stage mode",
        )
        for walk, spec, what in (
            ("PDTE", "§GET_PC step 3", "a PDT entry (implicit read)"),
            ("PC", "§GET_PC step 3", "a process context (implicit read)"),
            ("S_PTE", "§P2IOVA step 17", "a first-stage PTE (implicit read)"),
            ("S_PTE_AD", "§P2IOVA step 17, PTW step 7", "a first-stage A/D update (a write)"),
        ):
            yield Bin(
                f"g.implicit.{walk}",
                grp,
                spec,
                f"a G-stage walk translates the GPA of {what}",
            )
        yield Bin(
            "g.iotval2.implicit",
            grp,
            "Fault/Event-Queue record: iotval2 bit 0",
            "a guest-page fault of an implicit access for first-stage translation",
        )
        yield Bin(
            "g.iotval2.implicit_write",
            grp,
            "Fault/Event-Queue record: iotval2 bit 1",
            "a guest-page fault of an implicit write (A/D update of a first-stage PTE)",
        )
    else:
        yield Bin(
            "s.fault.non_canonical",
            grp,
            "§P2IOVA step 17 (IOVA not canonical / wider than 32 bits for Sv32)",
            "page fault: the IOVA does not fit the first-stage mode",
        )


# --------------------------------------------------------------------------
# privilege
# --------------------------------------------------------------------------
_PRIV: Tuple[Tuple[str, str, str], ...] = (
    ("user.U1", "PTW step 5", "a User request to a U=1 page (allowed)"),
    ("user.U0", "PTW step 5", "a User request to a U=0 page (page fault)"),
    ("super.U0", "PTW step 5", "a Supervisor request to a U=0 page (allowed)"),
    ("super.U1.SUM0", "PTW step 5, PC.ta.SUM", "a Supervisor request to a U=1 page, SUM=0"),
    ("super.U1.SUM1", "PTW step 5, PC.ta.SUM", "a Supervisor read/write of a U=1 page, SUM=1"),
    (
        "super.U1.SUM1.exec",
        "PTW step 5, PC.ta.SUM",
        "a Supervisor execute of a U=1 page with SUM=1 (never allowed)",
    ),
    ("ENS0", "§P2IOVA step 15", "a Supervisor request with PC.ta.ENS=0 (cause 260)"),
    ("ENS1", "§P2IOVA step 15", "a Supervisor request with PC.ta.ENS=1"),
)


def _priv_bins() -> Iterable[Bin]:
    for name, spec, text in _PRIV:
        yield Bin(f"priv.{name}", "privilege", spec, text)


# --------------------------------------------------------------------------
# byte order
# --------------------------------------------------------------------------
#: structures (MemAccess purposes) whose byte order fctl.BE or DC.tc.SBE selects
STRUCTURES: Tuple[Tuple[str, str], ...] = (
    ("DDTE", "fctl.BE"),
    ("DC", "fctl.BE"),
    ("PDTE", "DC.tc.SBE"),
    ("PC", "DC.tc.SBE"),
    ("S_PTE", "DC.tc.SBE"),
    ("G_PTE", "fctl.BE"),
    ("MSI_PTE", "fctl.BE"),
    ("AD", "DC.tc.SBE / fctl.BE"),
    ("CQ", "fctl.BE"),
    ("FQ", "fctl.BE"),
    ("PQ", "fctl.BE"),
    ("MSI", "fctl.BE"),
)


def _byte_order_bins() -> Iterable[Bin]:
    for s, by in STRUCTURES:
        for order in ("LE", "BE"):
            yield Bin(
                f"endian.{s}.{order}",
                "byte_order",
                f"§Endianness of in-memory data structures: {s} ({by})",
                f"{s} accessed {'big' if order == 'BE' else 'little'}-endian",
            )


# --------------------------------------------------------------------------
# MSI
# --------------------------------------------------------------------------
_MSI: Tuple[Tuple[str, str, str], ...] = (
    ("flat", "§MSI_TRANS step 13", "an MSI translated by a basic-translate (flat) MSI PTE"),
    ("mrif", "§MSI_TRANS step 14", "an MSI translated to an MRIF"),
    ("mrif.recorded", "AIA MSI PTE MRIF mode", "the IOMMU records an MSI in an MRIF"),
    ("fault.261", "§MSI_TRANS step 8", "MSI PTE load access fault"),
    ("fault.270", "§MSI_TRANS step 8", "MSI PT data corruption"),
    ("fault.262", "§MSI_TRANS step 9", "MSI PTE not valid (V=0)"),
    ("fault.263.custom", "§MSI_TRANS step 10", "MSI PTE with C=1"),
    ("fault.263.M0", "§MSI_TRANS step 12", "MSI PTE with M=0 (reserved)"),
    ("fault.263.M2", "§MSI_TRANS step 12", "MSI PTE with M=2 (reserved)"),
    ("fault.263.flat_reserved", "§MSI_TRANS step 13", "basic-translate MSI PTE reserved bits"),
    ("fault.263.mrif_unsupported", "§MSI_TRANS step 14", "MRIF MSI PTE without MSI_MRIF"),
    ("fault.263.mrif_reserved", "§MSI_TRANS step 14", "MRIF MSI PTE reserved bits"),
    ("fault.264", "AIA MRIF mode", "MRIF access fault"),
    ("fault.271", "AIA MRIF mode", "MSI MRIF data corruption"),
    ("fault.exec", "§MSI_TRANS step 15", "an execute to a virtual interrupt file (cause 1)"),
)


def _msi_bins() -> Iterable[Bin]:
    for name, spec, text in _MSI:
        yield Bin(f"msi.{name}", "msi", spec, text)


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------
def _command_bins() -> Iterable[Bin]:
    for gv in (0, 1):
        for av in (0, 1):
            for pscv in (0, 1):
                yield Bin(
                    f"cmd.IOTINVAL.VMA.GV{gv}.AV{av}.PSCV{pscv}",
                    "commands",
                    f"IOTINVAL.VMA operands table, row GV={gv} AV={av} PSCV={pscv}",
                    f"IOTINVAL.VMA with GV={gv}, AV={av}, PSCV={pscv} completes",
                )
    for flag in ("NL", "S"):
        yield Bin(
            f"cmd.IOTINVAL.VMA.{flag}",
            "commands",
            f"IOTINVAL.VMA operand {flag}",
            f"IOTINVAL.VMA with {flag}=1 completes",
        )
    for name, row in (("GV0", "GV=0"), ("GV1.AV0", "GV=1 AV=0"), ("GV1.AV1", "GV=1 AV=1")):
        yield Bin(
            f"cmd.IOTINVAL.GVMA.{name}",
            "commands",
            f"IOTINVAL.GVMA operands table, row {row}",
            f"IOTINVAL.GVMA with {row} completes",
        )
    for flag in ("NL", "S"):
        yield Bin(
            f"cmd.IOTINVAL.GVMA.{flag}",
            "commands",
            f"IOTINVAL.GVMA operand {flag}",
            f"IOTINVAL.GVMA with {flag}=1 completes",
        )
    for flag in ("none", "AV", "WSI", "PR", "PW"):
        yield Bin(
            f"cmd.IOFENCE.C.{flag}",
            "commands",
            "§IOMMU Command-queue Fence commands" + ("" if flag == "none" else f", {flag}=1"),
            "IOFENCE.C " + ("with no flag" if flag == "none" else f"with {flag}=1") + " completes",
        )
    for dv in (0, 1):
        yield Bin(
            f"cmd.IODIR.INVAL_DDT.DV{dv}",
            "commands",
            f"§IOMMU directory cache invalidation commands, IODIR.INVAL_DDT DV={dv}",
            f"IODIR.INVAL_DDT with DV={dv} completes",
        )
    yield Bin(
        "cmd.IODIR.INVAL_PDT.DV1",
        "commands",
        "§IOMMU directory cache invalidation commands, IODIR.INVAL_PDT (DV=1)",
        "IODIR.INVAL_PDT completes",
    )
    label = {"PV0": "PV=0", "PV1": "PV=1", "DSV": "DSV=1", "G": "G=1", "S": "S=1"}
    for cmd, flags in (("INVAL", ("PV0", "PV1", "DSV", "G", "S")), ("PRGR", ("PV0", "PV1", "DSV"))):
        for flag in flags:
            yield Bin(
                f"cmd.ATS.{cmd}.{flag}",
                "commands",
                f"§IOMMU PCIe ATS commands, ATS.{cmd} {label[flag]}",
                f"ATS.{cmd} with {label[flag]} completes",
            )


# --------------------------------------------------------------------------
# queues
# --------------------------------------------------------------------------
_QUEUE: Tuple[Tuple[str, str, str], ...] = (
    (
        "cq.wrap",
        "§Command-Queue: cqh wraps",
        "the IOMMU reads the command at index 0 after the last",
    ),
    ("cq.ill.opcode", "cqcsr.cmd_ill", "an illegal command: reserved or custom opcode"),
    ("cq.ill.func3", "cqcsr.cmd_ill", "an illegal command: reserved func3 for its opcode"),
    ("cq.ill.operand", "cqcsr.cmd_ill", "an illegal command: reserved bit or operand"),
    ("cq.mf", "cqcsr.cqmf", "a command-queue memory fault"),
    ("cq.timeout", "cqcsr.cmd_to", "IOFENCE.C finds a timed-out ATS.INVAL (cmd_to)"),
    ("cq.fence_wait", "§IOFENCE.C", "IOFENCE.C waits for outstanding ATS invalidations"),
    (
        "fq.wrap",
        "§Fault/Event-Queue: fqt wraps",
        "a fault record written at index 0 after the last",
    ),
    ("fq.overflow", "fqcsr.fqof", "a fault record discarded: the queue is full"),
    ("fq.mf", "fqcsr.fqmf", "a fault-queue memory fault"),
    (
        "pq.wrap",
        "§Page-Request-Queue: pqt wraps",
        "a page request written at index 0 after the last",
    ),
    ("pq.overflow", "pqcsr.pqof", "a page request discarded: the queue is full"),
    ("pq.mf", "pqcsr.pqmf", "a page-request-queue memory fault"),
)


def _queue_bins() -> Iterable[Bin]:
    for name, spec, text in _QUEUE:
        yield Bin(f"queue.{name}", "queues", spec, text)


# --------------------------------------------------------------------------
# interrupts, HPM, debug
# --------------------------------------------------------------------------
_SOURCES = (("CQ", "cip"), ("FQ", "fip"), ("HPM", "pmip"), ("PQ", "pip"))


def _interrupt_bins() -> Iterable[Bin]:
    for src, bit in _SOURCES:
        for how, spec, text in (
            ("wired", "fctl.WSI=1", "drives its wire"),
            ("msi", "fctl.WSI=0, msi_vec_ctl.M=0", "sends its MSI"),
            ("msi_masked", "fctl.WSI=0, msi_vec_ctl.M=1", "is held pending by the vector mask"),
        ):
            yield Bin(
                f"intr.{src}.{how}",
                "interrupts",
                f"ipsr.{bit}, {spec}",
                f"the {src} interrupt ({bit}) {text}",
            )


#: Standard HPM event IDs (spec "Standard Events list")
HPM_EVENTS: Dict[int, str] = {
    1: "Untranslated requests",
    2: "Translated requests",
    3: "ATS Translation requests",
    4: "TLB miss",
    5: "Device Directory Walks",
    6: "Process Directory Walks",
    7: "First-stage Page Table Walks",
    8: "Second-stage Page Table Walks",
}


def _hpm_bins() -> Iterable[Bin]:
    for n, text in HPM_EVENTS.items():
        yield Bin(
            f"hpm.event.{n}",
            "hpm",
            f"iohpmevt eventID {n}",
            f"{text} happen while a counter is programmed with eventID {n}",
        )
    yield Bin("hpm.overflow", "hpm", "iohpmevt.OF, ipsr.pmip", "a counter overflows (pmip)")


_DEBUG: Tuple[Tuple[str, str, str], ...] = (
    ("page", "tr_response (fault=0, S=0)", "a debug translation succeeds with a 4 KiB page"),
    ("superpage", "tr_response (fault=0, S=1)", "a debug translation succeeds with a superpage"),
    ("msi", "tr_response, §MSI_TRANS step 13", "a debug translation of an MSI address (flat)"),
    ("fault", "tr_response.fault=1", "a debug translation faults"),
    ("mrif_stop", "§Debug support (MRIF MSI PTE)", "a debug translation stops at an MRIF PTE"),
)


def _debug_bins() -> Iterable[Bin]:
    for name, spec, text in _DEBUG:
        yield Bin(f"debug.{name}", "debug", spec, text)


# --------------------------------------------------------------------------
# ATS / PRI
# --------------------------------------------------------------------------
_ATS_BINS: Tuple[Tuple[str, str, str], ...] = (
    ("completion.r", "§ATS_FAULTS", "a Success completion with R=1, W=0"),
    ("completion.rw", "§ATS_FAULTS", "a Success completion with R=1, W=1"),
    ("completion.x", "§ATS_FAULTS", "a Success completion with Execute permission"),
    ("completion.no_access", "§ATS_FAULTS", "a Success completion with R=W=0 (fault not reported)"),
    ("completion.range", "§ATS_FAULTS (S=1)", "a Success completion for a range larger than 4 KiB"),
    ("completion.t2gpa", "§ATS_FAULTS, DC.tc.T2GPA=1", "a Success completion carrying a GPA"),
    ("completion.msi", "§ATS_FAULTS, §MSI_TRANS", "a Success completion of an MSI address"),
    ("completion.mrif_u", "§ATS_FAULTS (U=1)", "a completion for an MRIF page: untranslated only"),
    ("completion.ur", "§ATS_FAULTS", "an Unsupported Request completion"),
    ("completion.ca", "§ATS_FAULTS", "a Completer Abort completion"),
    ("pri.queued", "§ATS_PRI", "a Page Request queued in the PQ (last in its group)"),
    ("pri.queued.partial", "§ATS_PRI", "a Page Request queued with L=0"),
    ("pri.queued.pasid", "§ATS_PRI", "a Page Request with a PASID queued"),
    ("pri.stop_marker", "§ATS_PRI", "a Stop Marker queued"),
    ("pri.auto.success", "§ATS_PRI", "the IOMMU answers Success itself (PQ full)"),
    ("pri.auto.invalid", "§ATS_PRI", "the IOMMU answers Invalid Request itself"),
    ("pri.auto.failure", "§ATS_PRI", "the IOMMU answers Response Failure itself"),
    ("pri.auto.pasid", "§ATS_PRI, DC.tc.PRPR", "an automatic response carries the PASID"),
    ("inval.sent", "ATS.INVAL", "an ATS Invalidation Request goes out"),
    ("inval.itag_exhausted", "ATS.INVAL (ITAGs)", "ATS.INVAL waits: every ITAG is in flight"),
    ("inval.completed", "ATS Invalidation Completion", "a completion completes an ATS.INVAL"),
    ("inval.cc", "ATS Invalidation Completion (CC)", "a completion with a Completion Count != 1"),
    ("prgr.sent", "ATS.PRGR", "a Page Request Group Response goes out by command"),
)


def _ats_bins() -> Iterable[Bin]:
    for name, spec, text in _ATS_BINS:
        yield Bin(f"ats.{name}", "ats", spec, text)


# --------------------------------------------------------------------------
# GIPC
# --------------------------------------------------------------------------
REVISIONS = ("2024", "2025")

#: The rows of the design's shared-decision table (docs/gipc.md), as bins.
GIPC_SHARED: Tuple[Tuple[str, str], ...] = (
    ("1", "a DC with DC.tc.GIPC=1 passes the checks (capabilities.GIPC=1)"),
    ("2", "DC.tc.GIPC set without capabilities.GIPC: a reserved bit (259)"),
    ("3", "DC.tc.GIPC=1 with PDTV=0 is misconfigured (259)"),
    ("4", "DC.tc.GIPC=1 with T2GPA=1 is misconfigured (259)"),
    ("5.pc", "a request that selects a PC uses PC.iohgatp"),
    ("5.dc", "a request that selects no PC uses DC.iohgatp"),
    ("6", "the PDT walk does no G-stage translation (DC.iohgatp not Bare)"),
    ("7", "a PC.iohgatp / PC MSI field check fails (267)"),
    ("8", "a cached GIPC PC is used"),
    ("9", "IODIR.INVAL_PDT then IOTINVAL.VMA and IOTINVAL.GVMA GV=1"),
    ("10", "a DC control (SADE/GADE A/D update) applies under a GIPC PC"),
    ("11", "a GIPC PC read big-endian (DC.tc.SBE=1)"),
    ("12", "a guest-page fault under PC.iohgatp"),
)

#: The rows of the design's "where the revisions differ" table, as bins.
GIPC_REVISION_ROWS: Tuple[Tuple[str, str, str], ...] = (
    ("2024", "pc32", "a 32-byte 2024 PC (MSI_FLAT=0): layout and 7/9/4 PDI split"),
    ("2024", "pc64", "a 64-byte 2024 PC (MSI_FLAT=1): layout and 6/9/5 PDI split"),
    ("2025", "pc32", "a 32-byte 2025 PC: layout and 7/9/4 PDI split"),
    ("2024", "pid_width", "a process_id wider than the 2024 PC allows (260)"),
    ("2025", "pid_width", "a process_id wider than the 2025 PC allows (260)"),
    ("2024", "s1_spa", "first-stage tables at SPAs (no G-stage walk for them)"),
    ("2025", "s1_gpa", "first-stage tables at GPAs translated by PC.iohgatp"),
    ("2024", "msi_pc", "an MSI translated with the 64-byte PC's MSI fields"),
    ("2025", "msi_dc", "an MSI translated with the DC's MSI fields under a GIPC PC"),
)


def _gipc_bins() -> Iterable[Bin]:
    for rev in REVISIONS:
        for row, text in GIPC_SHARED:
            yield Bin(
                f"gipc.{rev}.decision.{row}",
                "gipc",
                f"docs/gipc.md decision #{row.split('.')[0]}, revision {rev}",
                text,
            )
    for rev, row, text in GIPC_REVISION_ROWS:
        yield Bin(
            f"gipc.{rev}.{row}",
            "gipc",
            f"docs/gipc.md revision table, {rev} column",
            text,
        )


# --------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------
def _group(name: str, title: str, spec: str, decided_by: str, bins: Iterable[Bin]) -> Group:
    return Group(name, title, spec, decided_by, tuple(bins))


MODEL: Tuple[Group, ...] = (
    _group(
        "cause",
        "CAUSE x TTYP",
        "Fault/Event-Queue record: CAUSE and TTYP encodings",
        "response.rsp.fault (cause, ttyp); queue_record(queue=FQ).record (cause, ttyp)",
        _cause_bins(),
    ),
    _group(
        "dc_rules",
        "Device-context checks",
        "§DC_MISCONFIG",
        "check(passed=False, cause=259): step (rule number) or rule (text)",
        _dc_rule_bins(),
    ),
    _group(
        "pc_rules",
        "Process-context checks",
        "§PC_MISCONFIG, docs/gipc.md decision #7",
        "check(passed=False, cause=267): step (rule number) or rule (text)",
        _pc_rule_bins(),
    ),
    _group(
        "directories",
        "DDT levels, DC formats, PDT modes",
        "§GET_DC, §GET_PC",
        "read(structure=DDTE).level of the first DDTE before read(DC); "
        "read(PDTE).level before read(PC); config capabilities.MSI_FLAT for the DC format",
        _directory_bins(),
    ),
    _group(
        "s_stage",
        "First stage",
        "§P2IOVA step 17, Privileged spec PTW",
        "read(structure=S_PTE): level (the first read of a walk gives the mode), raw (V, R, W, "
        "X, U, A, D, N, PBMT, bits 60:54, PPN); mem(purpose=AD).addr; response.rsp.fault.cause",
        _stage_bins("s"),
    ),
    _group(
        "g_stage",
        "G-stage",
        "§P2IOVA step 19, Privileged spec two-stage translation",
        "read(structure=G_PTE): level, raw, walk; mem(purpose=AD).addr; "
        "response.rsp.fault (cause, iotval2)",
        _stage_bins("g"),
    ),
    _group(
        "privilege",
        "U / SUM / ENS / privilege",
        "PTW step 5, §P2IOVA step 15",
        "request.req.priv, access; read(S_PTE).raw U of the leaf; read(PC).raw ta.SUM/ENS "
        "(or the PC last read for that device and process_id); response.rsp.fault.cause",
        _priv_bins(),
    ),
    _group(
        "byte_order",
        "Structures x byte order",
        "§Endianness of in-memory data structures",
        "mem: purpose, big_endian",
        _byte_order_bins(),
    ),
    _group(
        "msi",
        "MSI translation",
        "§MSI_TRANS",
        "response.rsp (is_msi, is_mrif, fault.cause); read(MSI_PTE).raw (V, M, C, reserved); "
        "read(MRIF) or mem(purpose=MRIF_WRITE); config capabilities.MSI_MRIF",
        _msi_bins(),
    ),
    _group(
        "commands",
        "Commands: opcode x func3 x operands",
        "§Command-Queue (CQ)",
        "command(outcome=completed): opcode, func3, raw (or operands)",
        _command_bins(),
    ),
    _group(
        "queues",
        "Queue conditions",
        "§In-memory queue interface",
        "command.outcome; mem(purpose=CQ).addr; queue_record (queue, index, status); "
        "reg_write offsets of xqb/xqcsr (restart)",
        _queue_bins(),
    ),
    _group(
        "interrupts",
        "Interrupts: source x delivery x mask",
        "ipsr, icvec, msi_cfg_tbl",
        "interrupt: source, wired, masked",
        _interrupt_bins(),
    ),
    _group(
        "hpm",
        "HPM event IDs",
        "iohpmevt: Standard Events list",
        "reg_write(iohpmevtX).new eventID, then the event: request.req.kind, "
        "cache(IOTLB/DDT/PDT, miss), first read(S_PTE)/read(G_PTE, walk=final) of a walk; "
        "interrupt(source=HPM)",
        _hpm_bins(),
    ),
    _group(
        "debug",
        "Debug translation interface",
        "§Debug support",
        "request(debug=True) then response.rsp (fault, size, is_msi); read(MSI_PTE).raw M",
        _debug_bins(),
    ),
    _group(
        "ats",
        "ATS and PRI",
        "§ATS_FAULTS, §ATS_PRI, ATS commands",
        "response.rsp of ATS_TRANSLATION requests (status, r, w, x, u, s, is_msi, fault); "
        "DC.tc.T2GPA of the DC read; queue_record(queue=PQ).record; ats_message "
        "(InvalidationRequest, PageRequestGroupResponse during a page request); command.outcome",
        _ats_bins(),
    ),
    _group(
        "gipc",
        "GIPC decisions x revision",
        "docs/gipc.md (both tables)",
        "config (capabilities.GIPC, MSI_FLAT, gipc_revision, gipc_tc_bit); read(DC).raw "
        "tc.GIPC/T2GPA/iohgatp; check (DC rules 24/25, PC rules 10-17); read(PC); "
        "read(G_PTE).walk; cache(PDT, hit); mem(PC).big_endian; mem(AD); command; "
        "response.rsp (fault, is_msi)",
        _gipc_bins(),
    ),
)

#: Every bin of the model by name.
BINS: Dict[str, Bin] = {b.name: b for g in MODEL for b in g.bins}

_GROUPS: Dict[str, Group] = {g.name: g for g in MODEL}

#: A digest of the bin names: reports say which model they were made with.
MODEL_ID = hashlib.sha256("\n".join(BINS).encode()).hexdigest()[:12]


def group_of(name: str) -> str:
    """The group of a bin name (its model group, or ``"other"``)."""
    b = BINS.get(name)
    return b.group if b is not None else "other"


assert len(BINS) == sum(len(g.bins) for g in MODEL), "duplicate bin names"
