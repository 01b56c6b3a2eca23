/** The AI API's messages (ai/ai-client.ts) and the defaults of stored AI results (overlays/). */
export const ai = {
  en: {
    what: {
      models: 'AI model list',
      detection: 'Detection ({{model}})',
      analysis: 'Slide analysis ({{model}})',
      analysisState: 'Slide analysis state',
    },
    noStoredReport: 'Detection answered without a stored report',
    finding: 'finding',
    report: 'Report',
  },
  vi: {
    what: {
      models: 'Tải danh sách mô hình AI',
      detection: 'Phát hiện tổn thương ({{model}})',
      analysis: 'Phân tích tiêu bản ({{model}})',
      analysisState: 'Trạng thái phân tích tiêu bản',
    },
    noStoredReport: 'Máy chủ trả lời kết quả phát hiện nhưng không lưu báo cáo',
    finding: 'phát hiện',
    report: 'Báo cáo',
  },
} as const;
