// A DMA requester: copies `count` 64-bit words from IOVA `src` to IOVA `dst`.
//
// Every address first goes out on the translation port (tr_*), where the
// IOMMU answers with the physical address or a fault; in the testbench the
// riscv-iommu model is that IOMMU.  Memory is reached through an AXI4 master
// port (single 8-byte beats), connected to cocotbext-axi's AxiRam, whose
// memory the model's page tables share.  A translation fault stops the copy:
// done = 1, error = 1, fault_iova = the address that faulted.
module dma_requester #(
    parameter [23:0] DEVICE_ID = 24'h000042
) (
    input  wire        clk,
    input  wire        rst,
    // control
    input  wire        start,
    input  wire [63:0] src,
    input  wire [63:0] dst,
    input  wire [15:0] count,
    output reg         busy,
    output reg         done,
    output reg         error,
    output reg  [63:0] fault_iova,
    // translation port: tr_valid holds until tr_rsp_valid
    output reg         tr_valid,
    output reg  [63:0] tr_iova,
    output reg         tr_write,
    output wire [23:0] tr_device_id,
    input  wire        tr_rsp_valid,
    input  wire        tr_rsp_ok,
    input  wire [63:0] tr_rsp_pa,
    // AXI4 master
    output wire [3:0]  m_axi_awid,
    output reg  [63:0] m_axi_awaddr,
    output wire [7:0]  m_axi_awlen,
    output wire [2:0]  m_axi_awsize,
    output wire [1:0]  m_axi_awburst,
    output reg         m_axi_awvalid,
    input  wire        m_axi_awready,
    output reg  [63:0] m_axi_wdata,
    output wire [7:0]  m_axi_wstrb,
    output wire        m_axi_wlast,
    output reg         m_axi_wvalid,
    input  wire        m_axi_wready,
    input  wire [3:0]  m_axi_bid,
    input  wire [1:0]  m_axi_bresp,
    input  wire        m_axi_bvalid,
    output wire        m_axi_bready,
    output wire [3:0]  m_axi_arid,
    output reg  [63:0] m_axi_araddr,
    output wire [7:0]  m_axi_arlen,
    output wire [2:0]  m_axi_arsize,
    output wire [1:0]  m_axi_arburst,
    output reg         m_axi_arvalid,
    input  wire        m_axi_arready,
    input  wire [3:0]  m_axi_rid,
    input  wire [63:0] m_axi_rdata,
    input  wire [1:0]  m_axi_rresp,
    input  wire        m_axi_rlast,
    input  wire        m_axi_rvalid,
    output wire        m_axi_rready
);
    localparam IDLE = 3'd0, TR_SRC = 3'd1, AR = 3'd2, R = 3'd3, TR_DST = 3'd4, W = 3'd5, B = 3'd6;

    reg [2:0]  state;
    reg [15:0] index;
    reg [63:0] data;
    reg        aw_done, w_done;

    assign tr_device_id = DEVICE_ID;
    assign m_axi_awid = 4'd0;
    assign m_axi_awlen = 8'd0;      // one beat
    assign m_axi_awsize = 3'd3;     // 8 bytes
    assign m_axi_awburst = 2'b01;   // INCR
    assign m_axi_wstrb = 8'hFF;
    assign m_axi_wlast = 1'b1;
    assign m_axi_bready = state == B;
    assign m_axi_arid = 4'd0;
    assign m_axi_arlen = 8'd0;
    assign m_axi_arsize = 3'd3;
    assign m_axi_arburst = 2'b01;
    assign m_axi_rready = state == R;

    always @(posedge clk) begin
        if (rst) begin
            state <= IDLE;
            busy <= 1'b0;
            done <= 1'b0;
            error <= 1'b0;
            fault_iova <= 64'd0;
            tr_valid <= 1'b0;
            tr_iova <= 64'd0;
            tr_write <= 1'b0;
            m_axi_awvalid <= 1'b0;
            m_axi_wvalid <= 1'b0;
            m_axi_arvalid <= 1'b0;
            m_axi_awaddr <= 64'd0;
            m_axi_araddr <= 64'd0;
            m_axi_wdata <= 64'd0;
            index <= 16'd0;
            data <= 64'd0;
            aw_done <= 1'b0;
            w_done <= 1'b0;
        end else begin
            case (state)
                IDLE: if (start) begin
                    busy <= 1'b1;
                    done <= 1'b0;
                    error <= 1'b0;
                    index <= 16'd0;
                    if (count == 16'd0) begin
                        busy <= 1'b0;
                        done <= 1'b1;
                    end else begin
                        tr_valid <= 1'b1;
                        tr_iova <= src;
                        tr_write <= 1'b0;
                        state <= TR_SRC;
                    end
                end
                TR_SRC, TR_DST: if (tr_rsp_valid) begin
                    tr_valid <= 1'b0;
                    if (!tr_rsp_ok) begin
                        busy <= 1'b0;
                        done <= 1'b1;
                        error <= 1'b1;
                        fault_iova <= tr_iova;
                        state <= IDLE;
                    end else if (state == TR_SRC) begin
                        m_axi_araddr <= tr_rsp_pa;
                        m_axi_arvalid <= 1'b1;
                        state <= AR;
                    end else begin
                        m_axi_awaddr <= tr_rsp_pa;
                        m_axi_awvalid <= 1'b1;
                        m_axi_wdata <= data;
                        m_axi_wvalid <= 1'b1;
                        aw_done <= 1'b0;
                        w_done <= 1'b0;
                        state <= W;
                    end
                end
                AR: if (m_axi_arready) begin
                    m_axi_arvalid <= 1'b0;
                    state <= R;
                end
                R: if (m_axi_rvalid) begin
                    data <= m_axi_rdata;
                    tr_valid <= 1'b1;
                    tr_iova <= dst + {index, 3'b000};
                    tr_write <= 1'b1;
                    state <= TR_DST;
                end
                W: begin
                    if (m_axi_awvalid && m_axi_awready) begin
                        m_axi_awvalid <= 1'b0;
                        aw_done <= 1'b1;
                    end
                    if (m_axi_wvalid && m_axi_wready) begin
                        m_axi_wvalid <= 1'b0;
                        w_done <= 1'b1;
                    end
                    if ((aw_done || (m_axi_awvalid && m_axi_awready))
                        && (w_done || (m_axi_wvalid && m_axi_wready)))
                        state <= B;
                end
                B: if (m_axi_bvalid) begin
                    if (index + 16'd1 == count) begin
                        busy <= 1'b0;
                        done <= 1'b1;
                        state <= IDLE;
                    end else begin
                        index <= index + 16'd1;
                        tr_valid <= 1'b1;
                        tr_iova <= src + {index + 16'd1, 3'b000};
                        tr_write <= 1'b0;
                        state <= TR_SRC;
                    end
                end
                default: state <= IDLE;
            endcase
        end
    end
endmodule
