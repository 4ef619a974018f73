// A first-stage leaf-PTE permission checker: one small piece of an IOMMU's
// page-table walker, to be verified against the riscv-iommu model as the
// golden reference (see test_pte_check.py).
//
// Given the leaf PTE the walker found at level 0 of an Sv39 table and the
// request, it decides (combinationally) whether the access is allowed, and
// if not, the fault-record CAUSE and TTYP; if allowed, the physical address.
// Rules (RISC-V privileged spec, "Virtual Address Translation Process",
// as the IOMMU uses it for first-stage translation):
//   step 3: V = 0, W = 1 with R = 0, reserved bits 58:54, PBMT = 3 -> page fault
//   step 4: R = X = 0 at level 0 (a pointer where a leaf must be) -> page fault
//   Svnapot: N = 1 needs PPN[3:0] = 1000 (a 64 KiB page) -> else page fault
//   step 5: U = 1 needs a user request, or a supervisor one with SUM (not for
//           execute); U = 0 needs a supervisor request; R/W/X for the access
//   step 7: A = 0, or D = 0 for a write, without hardware A/D update (SADE) -> page fault
//
// BROKEN = 1 builds a deliberately wrong variant: it forgets the D bit on
// writes (step 7), the kind of bug the scoreboard is there to catch.
module pte_check #(
    parameter BROKEN = 0
) (
    input  wire [63:0] pte,
    input  wire [63:0] iova,
    input  wire [1:0]  access,   // 0 read, 1 write, 2 execute (riscv_iommu.Access)
    input  wire        priv,     // supervisor request (with a process_id)
    input  wire        sum,      // PC.ta.SUM
    input  wire        sade,     // DC.tc.SADE: hardware A/D update enabled
    output wire        ok,
    output wire [11:0] cause,    // fault-record CAUSE when !ok
    output wire [5:0]  ttyp,     // fault-record TTYP (untranslated requests)
    output wire [55:0] pa
);
    wire v = pte[0], r = pte[1], w = pte[2], x = pte[3], u = pte[4];
    wire a = pte[6], d = pte[7], n = pte[63];
    wire [1:0]  pbmt = pte[62:61];
    wire [43:0] ppn = pte[53:10];
    wire is_read = access == 2'd0, is_write = access == 2'd1, is_exec = access == 2'd2;

    wire invalid = !v || (w && !r) || (pte[58:54] != 5'd0) || (pbmt == 2'd3)
                   || (!r && !x) || (n && ppn[3:0] != 4'b1000);
    wire u_denied = u ? (priv && (!sum || is_exec)) : !priv;
    wire perm_denied = is_read ? !r : is_write ? !w : !x;
    wire d_needed = (BROKEN != 0) ? 1'b0 : (is_write && !d);
    wire ad_denied = !sade && (!a || d_needed);

    assign ok = !(invalid || u_denied || perm_denied || ad_denied);
    // page fault causes: 12 instruction, 13 read (load), 15 write/AMO (store)
    assign cause = ok ? 12'd0 : is_exec ? 12'd12 : is_write ? 12'd15 : 12'd13;
    // TTYP: 1 untranslated execute, 2 untranslated read, 3 untranslated write
    assign ttyp = is_exec ? 6'd1 : is_write ? 6'd3 : 6'd2;
    assign pa = !ok ? 56'd0
              : n ? {ppn[43:4], iova[15:0]}
              : {ppn, iova[11:0]};
endmodule
