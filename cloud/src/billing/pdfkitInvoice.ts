import PDFDocument from "pdfkit";
import type { BillView } from "./billingQueries.js";
import type { StoredBillContent } from "./billingRun.js";
import { formatMinorUnits } from "./money.js";
import { QUALITY } from "./vee.js";

/**
 * The invoice of one bill as a PDF (pdfkit, built-in Helvetica: no font files to ship). One A4
 * page: the meter and period, the opening/closing register reads (estimated ones marked),
 * consumption per TOU period, the line items, the total, and a bar chart of daily kWh.
 * Streams are left uncompressed: an invoice is a few kB, and its text stays searchable by
 * archiving tools (and tests).
 */
export function renderInvoicePdf(
  bill: BillView & { content: StoredBillContent },
  issuer = "edgemeter",
): Promise<Buffer> {
  const c = bill.content;
  const doc = new PDFDocument({
    size: "A4",
    margin: 50,
    compress: false,
    info: { Title: `Invoice ${bill.id}`, Author: issuer },
  });
  const chunks: Buffer[] = [];
  doc.on("data", (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on("end", () => resolve(Buffer.concat(chunks)));
    doc.on("error", reject);
  });
  const money = (minor: number) => `${formatMinorUnits(minor)} ${c.currency}`;
  const kwh = (value: number) => (Number.isFinite(value) ? `${value.toFixed(3)} kWh` : "n/a");
  const mark = (quality: number) =>
    quality === QUALITY.valid ? "" : quality === QUALITY.questionable ? " (questionable)" : " (ESTIMATED)";

  doc.font("Helvetica-Bold").fontSize(18).text(`Electricity bill ${c.period}`);
  doc.font("Helvetica").fontSize(10);
  doc.text(`Bill ${bill.id} version ${bill.version} - ${bill.status}`);
  doc.text(`Meter ${c.meterId} - time zone ${c.zone}`);
  if (c.estimated) {
    doc.moveDown(0.5).font("Helvetica-Bold").fillColor("#b00000");
    doc.text("ESTIMATED BILL: some readings were estimated (see marks below).");
    doc.fillColor("black").font("Helvetica");
  }

  doc.moveDown().font("Helvetica-Bold").text("Meter reads");
  doc.font("Helvetica");
  doc.text(
    `Opening ${new Date(c.opening.atMs).toISOString()}: ${kwh(c.opening.registerKwh)}${mark(c.opening.quality)}`,
  );
  doc.text(
    `Closing ${new Date(c.closing.atMs).toISOString()}: ${kwh(c.closing.registerKwh)}${mark(c.closing.quality)}`,
  );
  doc.text(`Consumption: ${kwh(c.importKwh)}${c.exportKwh > 0 ? `, export ${kwh(c.exportKwh)}` : ""}`);

  doc.moveDown().font("Helvetica-Bold").text("Consumption per time-of-use period");
  doc.font("Helvetica");
  c.importKwhByPeriod.forEach((value, index) => {
    doc.text(`Period ${index + 1}: ${kwh(value)}`);
  });

  doc.moveDown().font("Helvetica-Bold").text("Charges");
  doc.font("Helvetica");
  for (const line of c.lines) {
    const quantity =
      line.unit === "kWh" || line.unit === "kW" ? `${line.quantity.toFixed(3)} ${line.unit} x ${line.rate}` : "";
    const y = doc.y;
    doc.text(`${line.description}${quantity === "" ? "" : `  (${quantity})`}`, 50, y, { width: 380 });
    doc.text(money(line.amountMinor), 430, y, { width: 115, align: "right" });
  }
  doc.moveDown(0.5).font("Helvetica-Bold");
  const totalY = doc.y;
  doc.text("Total", 50, totalY);
  doc.text(money(c.totalMinor), 430, totalY, { width: 115, align: "right" });
  doc.font("Helvetica");

  // Daily consumption bar chart.
  const chartTop = doc.y + 25;
  const chartHeight = 100;
  const chartWidth = 495;
  doc.text("Daily consumption (kWh)", 50, chartTop - 15);
  // Bills from the bulk rollup path carry no daily series: the chart is then empty.
  const daily = c.dailyKwh ?? [];
  const max = Math.max(...daily, 0.001);
  const barWidth = chartWidth / Math.max(daily.length, 1);
  daily.forEach((value, index) => {
    const height = (value / max) * chartHeight;
    doc
      .rect(50 + index * barWidth + 1, chartTop + chartHeight - height, Math.max(barWidth - 2, 1), height)
      .fill("#2f6db5");
  });
  doc
    .fillColor("black")
    .moveTo(50, chartTop + chartHeight)
    .lineTo(50 + chartWidth, chartTop + chartHeight)
    .stroke();
  doc.fontSize(8).text(`max ${max.toFixed(1)} kWh/day`, 50, chartTop + chartHeight + 4);
  if (c.flags.length > 0) {
    doc
      .moveDown()
      .fontSize(8)
      .text(`Validation notes: ${c.flags.map((flag) => `${flag.code}: ${flag.detail}`).join("; ")}`, 50);
  }
  doc.end();
  return done;
}
