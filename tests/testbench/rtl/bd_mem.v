// An RTL memory, never initialised (it reads as X until written), with one
// read port and one write port.  The testbench reaches `mem` through the
// simulator (riscv_iommu.testbench.BackdoorMemory): the model's tables live
// in it.  The RTL reads `mem`, which also keeps Icarus from dropping it.
module bd_mem #(
    parameter WORDS = 4096
) (
    input  wire        clk,
    input  wire [31:0] rd_index,
    output reg  [63:0] rd_data,
    input  wire        wr_en,
    input  wire [31:0] wr_index,
    input  wire [63:0] wr_data
);
    reg [63:0] mem [0:WORDS-1];

    always @(posedge clk) begin
        rd_data <= mem[rd_index];
        if (wr_en)
            mem[wr_index] <= wr_data;
    end
endmodule
