"""Build examples/vectors/minimal.json with the Recorder (docs/vectors.md shows both)."""

import sys

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.driver import iofence_c
from riscv_iommu.vectors import Recorder, dumps

caps = rv.Capabilities(sv39=True, pas=48)  # base-format (32-byte) DCs, no MSI, no ATS
rec = Recorder(caps, rv.IommuParams(), fctl=0)
# the build phase: memory written now is the file's initial image
rec.mem.write(0x10020, F.DC_TC.V.mask.to_bytes(8, "little"))  # DC of device 1: valid, Bare
rec.start()
# software brings the IOMMU up through its registers
rec.mmio_write(rv.REG.CQB, F.QUEUE_BASE.encode(LOG2SZ_1=1, PPN=0x30), 8)  # 4 commands
rec.mmio_write(rv.REG.CQCSR, F.CQCSR.cqen.mask, 4)
rec.mmio_write(rv.REG.FQB, F.QUEUE_BASE.encode(LOG2SZ_1=1, PPN=0x20), 8)  # 4 records
rec.mmio_write(rv.REG.FQCSR, F.FQCSR.fqen.mask, 4)
rec.mmio_read(rv.REG.FQCSR, 4)  # fqon = 1
rec.mmio_write(rv.REG.DDTP, F.DDTP.encode(iommu_mode=rv.IommuMode.LVL1, PPN=0x10), 8)
# device 1 reads (Bare: the address passes through); device 2 has no valid DC
rec.translate(rv.Request(device_id=1, addr=0x8000_1000, length=8))
rec.translate(rv.Request(device_id=2, addr=0x5000, access=rv.Access.WRITE, length=4))
# a command: IOFENCE.C writing 0x1234 to 0x40000, as software writes it (cqt last)
fence = iofence_c(0x40000, 0x1234)
rec.mem.write(0x30000, fence.d0.to_bytes(8, "little") + fence.d1.to_bytes(8, "little"))
rec.mmio_write(rv.REG.CQT, 1, 4)
rec.mmio_read(rv.REG.FQT, 4)  # one record in the fault queue
sys.stdout.write(dumps(rec.document({"tool": "examples/vectors/minimal.py"})))
